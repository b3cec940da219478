"""The object store and object manager across processes and raylets on loopback."""
import glob
import json
import os
import signal
import subprocess
import threading

import pytest

from conftest import BIN, free_port, process_alive, session_dirs, wait_until

TOOL = os.path.join(BIN, "shoal-store-tool")
MiB = 1 << 20


def object_id(n):
    """A valid 28-byte object id, distinct for each n."""
    return f"{n:056x}"


def tool(*args, check=True, timeout=120, **kwargs):
    proc = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs)
    out = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    if check and (proc.returncode != 0 or "error" in out):
        raise AssertionError(f"shoal-store-tool {' '.join(map(str, args))}: {proc.stdout} {proc.stderr}")
    return out


def raylets(cluster):
    """Ready records of every raylet started under the cluster's root: pid, port, store_socket."""
    out = []
    for session in session_dirs(cluster.root):
        for path in glob.glob(os.path.join(session, "raylet.ready.json")):
            with open(path) as f:
                rec = json.load(f)
            rec["head"] = os.path.exists(os.path.join(session, "gcs.ready.json"))
            out.append(rec)
    return sorted(out, key=lambda r: not r["head"])  # head first


def store_of(raylet):
    return raylet["store_socket"]


def address_of(raylet):
    return f"127.0.0.1:{raylet['port']}"


@pytest.fixture
def two_nodes(cluster):
    cluster.start_head("--num-cpus", 1, "--object-store-memory", 512 * MiB)
    cluster.start_worker("--num-cpus", 1, "--object-store-memory", 512 * MiB)
    nodes = raylets(cluster)
    assert len(nodes) == 2
    return nodes


def test_put_in_one_process_zero_copy_get_in_another(two_nodes):
    head = store_of(two_nodes[0])
    put = tool("put", "--socket", head, "--id", object_id(1), "--size", 3 * MiB + 17,
               "--metadata-size", 100, "--seed", 7)
    for _ in range(3):
        got = tool("get", "--socket", head, "--id", object_id(1))
        assert got["checksum"] == put["checksum"]
        assert got["data_size"] == 3 * MiB + 17 and got["metadata_size"] == 100
        assert got["in_shared_memory"]
    # The other node's store is separate.
    missing = tool("get", "--socket", store_of(two_nodes[1]), "--id", object_id(1), check=False)
    assert "error" in missing


def test_client_killed_while_holding_a_reference(two_nodes):
    head = store_of(two_nodes[0])
    holder = subprocess.Popen([TOOL, "put", "--socket", head, "--id", object_id(2), "--size", str(MiB), "--hold"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert "checksum" in json.loads(holder.stdout.readline())
        # Deleting a referenced object waits for the last reference...
        tool("delete", "--socket", head, "--id", object_id(2))
        assert tool("contains", "--socket", head, "--id", object_id(2))["contains"]
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        # ...which the store drops when it sees the holder's connection close.
        wait_until(lambda: not tool("contains", "--socket", head, "--id", object_id(2))["contains"], 10,
                   what="the dead client's reference to be released")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    # The id is free again and the store serves new work.
    tool("put", "--socket", head, "--id", object_id(2), "--size", 1000)
    assert tool("stats", "--socket", head)["num_objects"] >= 1


def test_filling_past_capacity_spills_and_every_object_comes_back(cluster):
    cluster.start_head("--num-cpus", 1, "--object-store-memory", 64 * MiB)
    store = store_of(raylets(cluster)[0])
    sums = {}
    for i in range(24):  # 192 MiB into a 64 MiB store
        sums[i] = tool("put", "--socket", store, "--id", object_id(100 + i), "--size", 8 * MiB,
                       "--seed", i)["checksum"]
    stats = tool("stats", "--socket", store)
    assert stats["num_spilled"] > 0 and stats["bytes_spilled"] > 0
    assert stats["bytes_used"] <= 64 * MiB
    for i in reversed(range(24)):
        got = tool("get", "--socket", store, "--id", object_id(100 + i))
        assert got["checksum"] == sums[i], f"object {i} changed"
    assert tool("stats", "--socket", store)["num_restored"] > 0


def test_object_larger_than_the_store_is_refused_and_the_store_lives_on(cluster):
    cluster.start_head("--num-cpus", 1, "--object-store-memory", 64 * MiB)
    store = store_of(raylets(cluster)[0])
    out = tool("put", "--socket", store, "--id", object_id(5), "--size", 65 * MiB, check=False)
    assert "ObjectStoreFull" in out["error"]
    tool("put", "--socket", store, "--id", object_id(5), "--size", MiB)
    assert tool("get", "--socket", store, "--id", object_id(5))["data_size"] == MiB


def test_two_raylets_transfer_256_mib(two_nodes):
    head, worker = two_nodes
    put = tool("put", "--socket", store_of(worker), "--id", object_id(9), "--size", 256 * MiB, "--seed", 3)
    out = tool("fetch", "--raylet", address_of(head), "--id", object_id(9), "--from", address_of(worker))
    assert out["fetched_from"] == address_of(worker)
    got = tool("get", "--socket", store_of(head), "--id", object_id(9))
    assert got["checksum"] == put["checksum"] and got["data_size"] == 256 * MiB
    # Already here: a second fetch is a no-op.
    assert tool("fetch", "--raylet", address_of(head), "--id", object_id(9),
                "--from", address_of(worker))["fetched_from"] == ""


def transfer_port(cluster, raylet):
    import shoalpb.raylet_pb2 as raylet_pb2
    import shoalpb.raylet_pb2_grpc as raylet_pb2_grpc
    stub = raylet_pb2_grpc.ObjectManagerServiceStub(cluster.channel(address_of(raylet)))
    return stub.TransferPort(raylet_pb2.TransferPortRequest(), timeout=10).port


def test_raylets_serve_pulls_over_plain_sockets_unless_told_grpc(cluster, gcs_stubs):
    # gcs_stubs generates the Python stubs of every proto (transfer_port uses the raylet's).
    # By default every raylet serves pulls over a socket of its own, and says where.
    cluster.start_head("--num-cpus", 1, "--object-store-memory", 256 * MiB)
    cluster.start_worker("--num-cpus", 1, "--object-store-memory", 256 * MiB)
    head, worker = raylets(cluster)
    assert transfer_port(cluster, head) > 0 and transfer_port(cluster, worker) > 0
    # SHOAL_OBJECT_TRANSFER=grpc: this node serves none (and pulls over gRPC); objects still
    # move both ways between it and a node that serves sockets.
    cluster.env["SHOAL_OBJECT_TRANSFER"] = "grpc"
    cluster.start_worker("--num-cpus", 1, "--object-store-memory", 256 * MiB)
    del cluster.env["SHOAL_OBJECT_TRANSFER"]
    grpc_node = [r for r in raylets(cluster) if r["pid"] not in (head["pid"], worker["pid"])][0]
    assert transfer_port(cluster, grpc_node) == 0
    for n, (source, dest) in enumerate([(worker, grpc_node), (grpc_node, head), (worker, head)]):
        put = tool("put", "--socket", store_of(source), "--id", object_id(40 + n), "--size", 9 * MiB, "--seed", n)
        out = tool("fetch", "--raylet", address_of(dest), "--id", object_id(40 + n), "--from", address_of(source))
        assert out["fetched_from"] == address_of(source)
        assert tool("get", "--socket", store_of(dest), "--id", object_id(40 + n))["checksum"] == put["checksum"]
    # Any other value is refused at start, naming the variable.
    cluster.env["SHOAL_OBJECT_TRANSFER"] = "rdma"
    try:
        proc = cluster.shoal("start", "--address", cluster.address, "--num-cpus", 1, check=False)
    finally:
        del cluster.env["SHOAL_OBJECT_TRANSFER"]
    assert proc.returncode != 0
    assert "SHOAL_OBJECT_TRANSFER" in proc.stdout + proc.stderr
    assert len(raylets(cluster)) == 3


def test_fetch_skips_a_dead_holder_and_fails_cleanly_without_one(two_nodes):
    head, worker = two_nodes
    put = tool("put", "--socket", store_of(worker), "--id", object_id(10), "--size", 5 * MiB)
    dead = f"127.0.0.1:{free_port()}"
    out = tool("fetch", "--raylet", address_of(head), "--id", object_id(10),
               "--from", f"{dead},{address_of(worker)}")
    assert out["fetched_from"] == address_of(worker)
    assert tool("get", "--socket", store_of(head), "--id", object_id(10))["checksum"] == put["checksum"]

    out = tool("fetch", "--raylet", address_of(head), "--id", object_id(11), "--from", dead, check=False)
    assert dead in out["error"]
    assert not tool("contains", "--socket", store_of(head), "--id", object_id(11))["contains"]
    # A holder that does not have the object is an error too, not a hang.
    out = tool("fetch", "--raylet", address_of(head), "--id", object_id(12), "--from", address_of(worker),
               check=False)
    assert "error" in out
    assert process_alive(head["pid"])


def test_holder_killed_mid_transfer_leaves_no_partial_copy(two_nodes):
    head, worker = two_nodes
    tool("put", "--socket", store_of(worker), "--id", object_id(20), "--size", 400 * MiB)
    result = {}

    def fetch():
        result.update(tool("fetch", "--raylet", address_of(head), "--id", object_id(20),
                           "--from", address_of(worker), check=False))
    t = threading.Thread(target=fetch)
    t.start()
    os.kill(worker["pid"], signal.SIGKILL)
    t.join(120)
    assert not t.is_alive()
    # Either the copy finished before the kill (and is whole) or it failed and left nothing.
    here = tool("contains", "--socket", store_of(head), "--id", object_id(20))["contains"]
    if "error" in result:
        assert not here
    else:
        assert here
        assert tool("get", "--socket", store_of(head), "--id", object_id(20))["data_size"] == 400 * MiB
    assert process_alive(head["pid"])
    tool("put", "--socket", store_of(head), "--id", object_id(21), "--size", MiB)


def test_bad_requests_get_clear_errors(two_nodes):
    head = two_nodes[0]
    out = tool("get", "--socket", store_of(head), "--id", object_id(30), "--timeout-ms", 0, check=False)
    assert "error" in out
    out = tool("fetch", "--raylet", address_of(head), "--id", object_id(31), "--from", "nonsense", check=False)
    assert "error" in out
    tool("put", "--socket", store_of(head), "--id", object_id(32), "--size", 10)
    out = tool("put", "--socket", store_of(head), "--id", object_id(32), "--size", 10, check=False)
    assert "exists" in out["error"].lower()
    assert process_alive(head["pid"])


def test_deep_session_dirs_use_short_socket_paths_and_stale_ones_are_swept(cluster):
    # A root so deep that <session>/sockets/object_store cannot be a Unix socket path.
    deep = os.path.join(cluster.root, "d" * 60, "e" * 60)
    os.makedirs(deep)
    cluster.root = deep
    cluster.env["SHOAL_TMPDIR"] = deep
    # A socket left by a raylet that was killed: nobody listens on it any more.
    import socket as socketlib
    os.makedirs("/tmp/shoal-sockets", exist_ok=True)
    stale = f"/tmp/shoal-sockets/store-stale-{os.getpid()}"
    s = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    s.bind(stale)
    s.close()
    assert os.path.exists(stale)

    cluster.start_head("--num-cpus", 1, "--object-store-memory", 64 * MiB)
    raylet = raylets(cluster)[0]
    assert raylet["store_socket"].startswith("/tmp/shoal-sockets/")
    assert not os.path.exists(stale)
    tool("put", "--socket", store_of(raylet), "--id", object_id(40), "--size", MiB)
    assert tool("get", "--socket", store_of(raylet), "--id", object_id(40))["data_size"] == MiB
    cluster.shoal("stop")
    assert not os.path.exists(raylet["store_socket"])
