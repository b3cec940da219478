"""Tensors that stay with the actor that returned them (tensor_transport), tested here with host
tensors (numpy; torch CPU tensors where torch is installed) through the same orchestration the
GPU paths use: placeholders in the stored value, a transfer from the holder when a consumer or
the driver deserializes it, freeing when the owner lets go, and ObjectLostError when the holder
died. And GPU memory caps as a node without MPS applies them: the variables a fractional-GPU
task sees, the node label, `shoal status -v`."""
import gc
import os
import signal
import sys

import numpy as np
import pytest

from conftest import PYTHON_DIR, wait_until

sys.path.insert(0, PYTHON_DIR)

import shoal  # noqa: E402
from shoal.exceptions import ObjectLostError  # noqa: E402


@shoal.remote(num_cpus=1, resources={"A": 1})
class Producer:
    @shoal.method(tensor_transport="gloo")
    def make(self, n):
        return {"big": np.arange(n, dtype=np.float32), "parts": [np.full(3, 7, dtype=np.int64), "label"]}

    def plain(self, n):
        return np.arange(n, dtype=np.float32)

    def held(self):
        from shoal._private import tensor_transport
        return tensor_transport.held_count()

    def pid(self):
        return os.getpid()

    def own(self, value):
        # The holder given its own ref: the very arrays it holds, no transfer.
        from shoal._private import tensor_transport
        return value["big"].sum().item(), tensor_transport.held_count()


@shoal.remote(num_cpus=1, resources={"B": 1})
class Consumer:
    def checksum(self, value):
        return float(value["big"].sum()), value["parts"][0].tolist(), value["parts"][1], value["big"].flags.writeable


def test_tensors_stay_with_the_holder_and_move_to_consumers(driver):
    producer, consumer = Producer.remote(), Consumer.remote()
    n = 1 << 20  # 4 MiB
    ref = producer.make.remote(n)
    expected = float(np.arange(n, dtype=np.float32).sum())
    # Another node's actor gets it over host staging.
    assert shoal.get(consumer.checksum.remote(ref), timeout=60) == (expected, [7, 7, 7], "label", True)
    # The driver too; and the holder keeps both arrays while the ref lives.
    value = shoal.get(ref, timeout=60)
    assert value["big"].shape == (n,) and value["big"].dtype == np.float32
    assert float(value["big"].sum()) == expected
    assert shoal.get(producer.held.remote()) == 2
    assert shoal.get(producer.own.remote(ref)) == (expected, 2)
    # .options(tensor_transport=...) on a method declared without it.
    ref2 = producer.plain.options(tensor_transport="nccl").remote(10)
    assert shoal.get(ref2).tolist() == list(range(10))
    assert shoal.get(producer.held.remote()) == 3
    # The owner lets go: the holder frees them.
    del ref, ref2, value
    gc.collect()
    wait_until(lambda: shoal.get(producer.held.remote()) == 0, 30, what="the holder to free the tensors")
    shoal.kill(producer)
    shoal.kill(consumer)


def test_a_holder_that_died_makes_the_get_fail_with_object_lost(driver):
    producer = Producer.remote()
    ref = producer.make.remote(100)
    shoal.wait([ref], timeout=60)
    os.kill(shoal.get(producer.pid.remote()), signal.SIGKILL)
    wait_until(lambda: _dead(producer), 30, what="the producer to be dead")
    with pytest.raises(ObjectLostError, match="cannot be fetched"):
        shoal.get(ref, timeout=60)
    consumer = Consumer.remote()
    with pytest.raises(Exception) as info:
        shoal.get(consumer.checksum.remote(ref), timeout=60)
    assert "cannot be fetched" in str(info.value) or isinstance(info.value, ObjectLostError)
    # The consumer itself is fine (a plain argument: read-only arrays from the store, as in Ray).
    assert shoal.get(consumer.checksum.remote({"big": np.ones(2), "parts": [np.ones(1), "x"]})) == (
        2.0, [1.0], "x", False)
    shoal.kill(consumer)


def _dead(actor):
    try:
        shoal.get(actor.held.remote(), timeout=5)
        return False
    except Exception:  # noqa: BLE001 - ActorDiedError and friends
        return True


def test_bad_tensor_transport_options_are_refused(driver):
    with pytest.raises(ValueError, match="tensor_transport"):
        shoal.method(tensor_transport="carrier-pigeon")
    producer = Producer.remote()
    with pytest.raises(ValueError, match="tensor_transport"):
        producer.plain.options(tensor_transport="ucx")
    with pytest.raises(ValueError, match="num_returns"):
        producer.plain.options(tensor_transport="nccl", num_returns="streaming").remote(3)
    with pytest.raises(ValueError):
        @shoal.remote(tensor_transport="nccl")
        def task():
            return 1
    shoal.kill(producer)


def test_torch_cpu_tensors_travel_as_host_tensors(driver):
    torch = pytest.importorskip("torch")

    @shoal.remote(num_cpus=1, resources={"A": 1})
    class TorchProducer:
        @shoal.method(tensor_transport="nccl")
        def make(self):
            return [torch.arange(6, dtype=torch.bfloat16).reshape(2, 3), torch.ones(4, dtype=torch.int64)]

    p = TorchProducer.remote()
    a, b = shoal.get(p.make.remote(), timeout=60)
    assert a.dtype == torch.bfloat16 and a.shape == (2, 3) and a.sum().item() == 15
    assert b.tolist() == [1, 1, 1, 1]
    shoal.kill(p)


@shoal.remote(num_cpus=0)
def cap_variables():
    return {k: os.environ.get(k) for k in ("SHOAL_GPU_MEMORY_FRACTION", "XLA_PYTHON_CLIENT_MEM_FRACTION",
                                           "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", "CUDA_VISIBLE_DEVICES")}


def test_fractional_gpu_tasks_get_memory_caps(driver):
    # Node A has 2 GPUs and no MPS here: the frameworks' caps.
    node_a = [n for n in driver.alive_nodes() if "A" in n["resources_total"]][0]
    assert node_a["labels"]["shoal.io/gpu-memory-caps"] == "framework"
    half = shoal.get(cap_variables.options(num_gpus=0.5, resources={"A": 1}).remote(), timeout=60)
    assert half["SHOAL_GPU_MEMORY_FRACTION"] == "0.5" and half["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.5"
    assert half["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] is None
    quarter = shoal.get(cap_variables.options(num_gpus=0.25, resources={"A": 1}).remote(), timeout=60)
    assert quarter["SHOAL_GPU_MEMORY_FRACTION"] == "0.25"
    whole = shoal.get(cap_variables.options(num_gpus=1, resources={"A": 1}).remote(), timeout=60)
    assert whole["SHOAL_GPU_MEMORY_FRACTION"] is None and whole["XLA_PYTHON_CLIENT_MEM_FRACTION"] is None
    assert whole["CUDA_VISIBLE_DEVICES"] in ("0", "1")
    status = driver.shoal("status", "-v").stdout
    assert "GPU memory caps: framework" in status
    # The head has no GPU: no label, no caps line for it.
    head = [n for n in driver.alive_nodes() if n.get("is_head")][0]
    assert "shoal.io/gpu-memory-caps" not in head.get("labels", {})
