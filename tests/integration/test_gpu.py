"""The GPU paths, end to end on a cluster: skipped (with the reason) where this machine has no
CUDA device and torch, which is the case on the CI machine; bench/gpu/run_gpu_suite.sh runs them
on a GPU machine. On one GPU:
  - a one-rank NCCL allreduce through shoal.util.collective;
  - two 0.5-GPU actors on one device exchanging a 256 MiB tensor with tensor_transport="nccl":
    the runtime picks CUDA IPC (NCCL cannot put two ranks on one GPU), checksums equal, GB/s
    printed next to the device's own device-to-device copy;
  - a 0.5-GPU actor that tries to allocate 80% of the card is refused while a second 0.5-GPU
    actor on the same card keeps running.
Figures go to $SHOAL_GPU_FIGURES (a JSON file) when set."""
import json
import os
import sys
import time

import pytest

from conftest import PYTHON_DIR

torch = pytest.importorskip("torch", reason="the GPU tests need torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device here: the GPU tests run with bench/gpu/run_gpu_suite.sh on a GPU machine",
                allow_module_level=True)

sys.path.insert(0, PYTHON_DIR)

import shoal  # noqa: E402
import shoal.util.collective as col  # noqa: E402

FIGURES = {}


def _record(name, value):
    FIGURES[name] = value
    print(f"FIGURE {name} = {value}")
    path = os.environ.get("SHOAL_GPU_FIGURES")
    if path:
        with open(path, "w") as f:
            json.dump(FIGURES, f, indent=1)


@pytest.fixture(scope="module")
def gpu_cluster():
    import shutil
    import tempfile
    from conftest import Cluster, wait_until
    root = tempfile.mkdtemp(prefix="shoal-gpu-", dir="/tmp")
    c = Cluster(root)
    try:
        c.start_head("--num-cpus", 4, "--num-gpus", 1)
        wait_until(lambda: len(c.alive_nodes()) == 1, 20, what="the head")
        os.environ["SHOAL_AUTH_TOKEN"] = c.auth_token()
        shoal.init(address=c.address)
        yield c
        shoal.shutdown()
    finally:
        c.teardown()
        shutil.rmtree(root, ignore_errors=True)


@shoal.remote(num_gpus=0.5, num_cpus=1)
class Half:
    def ready(self):
        import torch
        torch.zeros(1, device="cuda")
        return os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get("SHOAL_GPU_MEMORY_FRACTION")

    @shoal.method(tensor_transport="nccl")
    def make(self, mib):
        import torch
        g = torch.Generator(device="cuda").manual_seed(7)
        return torch.randint(0, 1 << 30, ((mib << 20) // 4,), device="cuda", dtype=torch.int32, generator=g)

    def checksum_of_made(self, mib):
        import torch
        g = torch.Generator(device="cuda").manual_seed(7)
        t = torch.randint(0, 1 << 30, ((mib << 20) // 4,), device="cuda", dtype=torch.int32, generator=g)
        return int(t.to(torch.int64).sum().item())

    def receive(self, t):
        import torch
        from shoal._private import tensor_transport
        torch.cuda.synchronize()
        return int(t.to(torch.int64).sum().item()), str(t.device), tensor_transport.transfer_counts()

    def timed_receive(self, ref_list):
        import torch
        from shoal._private import tensor_transport
        start = time.perf_counter()
        t = shoal.get(ref_list[0])
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        src = torch.empty_like(t)
        torch.cuda.synchronize()
        start = time.perf_counter()
        src.copy_(t)
        torch.cuda.synchronize()
        d2d = time.perf_counter() - start
        return seconds, d2d, t.numel() * 4, tensor_transport.transfer_counts()

    def allocate(self, fraction):
        import torch
        total = torch.cuda.get_device_properties(0).total_memory
        try:
            x = torch.empty(int(total * fraction), dtype=torch.uint8, device="cuda")
            del x
            return "allocated"
        except torch.cuda.OutOfMemoryError as e:
            return f"refused: {str(e)[:200]}"

    def alive(self):
        import torch
        return float(torch.ones(4, device="cuda").sum().item())


def test_one_rank_nccl_allreduce(gpu_cluster):
    @shoal.remote(num_gpus=1, num_cpus=1)
    def run():
        import torch
        col.init_collective_group(1, 0, backend="nccl", group_name="one")
        t = torch.full((1024,), 2.5, device="cuda")
        col.allreduce(t, group_name="one")
        col.destroy_collective_group("one")
        return float(t.sum().item())
    assert shoal.get(run.remote(), timeout=300) == 2.5 * 1024


def test_two_half_gpu_actors_exchange_256_mib_over_ipc(gpu_cluster):
    a, b = Half.remote(), Half.remote()
    (dev_a, frac_a), (dev_b, _) = shoal.get([a.ready.remote(), b.ready.remote()], timeout=300)
    assert dev_a == dev_b and frac_a == "0.5"
    expected = shoal.get(a.checksum_of_made.remote(256))
    ref = a.make.remote(256)
    total, device, counts = shoal.get(b.receive.remote(ref), timeout=300)
    assert total == expected and device.startswith("cuda")
    assert counts["ipc"] == 1, counts
    seconds, d2d, nbytes, _ = shoal.get(b.timed_receive.remote([a.make.remote(256)]), timeout=300)
    _record("ipc_256MiB_GBps", round(nbytes / seconds / 1e9, 1))
    _record("d2d_256MiB_GBps", round(nbytes / d2d / 1e9, 1))
    # The driver (no GPU work of its own here) gets it as well.
    got = shoal.get(ref, timeout=300)
    assert int(got.to(torch.int64).sum().item()) == expected


def test_half_gpu_worker_cannot_take_most_of_the_card(gpu_cluster):
    a, b = Half.remote(), Half.remote()
    shoal.get([a.ready.remote(), b.ready.remote()], timeout=300)
    result = shoal.get(a.allocate.remote(0.8), timeout=300)
    assert result.startswith("refused"), result
    assert shoal.get(b.alive.remote(), timeout=60) == 4.0
    assert shoal.get(a.allocate.remote(0.3), timeout=300) == "allocated"
