"""A cluster of real processes on loopback: membership, health checks, status, stop."""
import os
import signal
import socket
import subprocess
import threading
import time

import grpc
import pytest

from conftest import (BIN, HEALTH_PERIOD_MS, HEALTH_THRESHOLD, HEALTH_TIMEOUT_MS, free_port,
                      process_alive, restart_gcs, session_dirs, wait_until, worker_raylet_pids)

# Polling bounds (never asserted durations): generous, for a loaded 2-core machine.
DEATH_DEADLINE_S = 60  # generous bound for polling; the test never asserts a duration


def gcs_pid(cluster):
    return cluster.recorded_pids()["gcs"][0]


def test_three_nodes_with_different_resources(cluster):
    cluster.start_head("--num-cpus", 2, "--num-gpus", 0)
    cluster.start_worker("--num-cpus", 4, "--num-gpus", 2, "--labels", '{"zone": "a"}')
    cluster.start_worker("--num-cpus", 1, "--resources", '{"TPU": 4, "accel": 0.5}')

    status = wait_until(lambda: (s := cluster.status()) and
                        sum(n["state"] == "ALIVE" for n in s["nodes"]) == 3 and s,
                        30, what="3 alive nodes")
    assert [n["is_head"] for n in status["nodes"]].count(True) == 1
    assert status["total"]["CPU"] == 7
    assert status["total"]["GPU"] == 2
    assert status["total"]["TPU"] == 4
    assert status["total"]["accel"] == 0.5
    # No tasks yet: everything is available and nothing is demanded.
    assert status["available"]["CPU"] == 7
    assert status["demands"] == []
    by_cpu = {n["resources_total"]["CPU"]: n for n in status["nodes"]}
    # The user's labels, and Shoal's own for a GPU node: how it caps fractional GPUs' memory.
    assert by_cpu[4]["labels"] == {"zone": "a", "shoal.io/gpu-memory-caps": "framework"}
    assert by_cpu[1]["labels"] == {}
    assert by_cpu[4]["resources_total"]["GPU"] == 2
    assert "node:127.0.0.1" in by_cpu[1]["resources_total"]

    text = cluster.shoal("status", "--address", cluster.address).stdout
    assert text.count("ALIVE") == 3, text
    assert "TPU" in text and "GPU" in text


def test_killed_raylet_is_reported_dead(cluster):
    cluster.start_head("--num-cpus", 1)
    cluster.start_worker("--num-cpus", 2)
    cluster.start_worker("--num-cpus", 3)
    wait_until(lambda: len(cluster.alive_nodes()) == 3, 30, what="3 alive nodes")
    victim = worker_raylet_pids(cluster)[0]
    os.kill(victim, signal.SIGKILL)

    def one_dead():
        s = cluster.status()
        dead = [n for n in s["nodes"] if n["state"] == "DEAD"]
        return len(dead) == 1 and s
    status = wait_until(one_dead, DEATH_DEADLINE_S, what="the killed node to be declared dead")
    dead = [n for n in status["nodes"] if n["state"] == "DEAD"][0]
    assert "health check" in dead["death_reason"]
    alive_cpus = sum(n["resources_total"]["CPU"] for n in status["nodes"] if n["state"] == "ALIVE")
    assert status["total"]["CPU"] == alive_cpus
    assert alive_cpus in (3, 4)


def test_stopped_raylet_unregisters_with_a_reason(cluster):
    cluster.start_head("--num-cpus", 1)
    cluster.start_worker("--num-cpus", 1)
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 30, what="2 alive nodes")
    worker = worker_raylet_pids(cluster)[0]
    os.kill(worker, signal.SIGTERM)
    wait_until(lambda: not process_alive(worker), 30, what="the raylet to exit")
    dead = [n for n in cluster.status()["nodes"] if n["state"] == "DEAD"]
    assert len(dead) == 1 and "stopped" in dead[0]["death_reason"]


def test_raylet_frozen_past_the_threshold_is_not_taken_back(cluster):
    cluster.start_head("--num-cpus", 1)
    cluster.start_worker("--num-cpus", 1)
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 30, what="2 alive nodes")
    worker = worker_raylet_pids(cluster)[0]
    os.kill(worker, signal.SIGSTOP)
    try:
        wait_until(lambda: len(cluster.alive_nodes()) == 1, DEATH_DEADLINE_S, what="the frozen node to die")
    finally:
        os.kill(worker, signal.SIGCONT)
    # A node declared dead never comes back under the same id: its raylet exits.
    wait_until(lambda: not process_alive(worker), 30, what="the refused raylet to exit")
    assert len(cluster.alive_nodes()) == 1


def kv(stubs, cluster):
    gcs_pb2, gcs_pb2_grpc, _ = stubs
    return gcs_pb2, gcs_pb2_grpc.KVServiceStub(cluster.channel())


def test_gcs_restart_with_redis_keeps_nodes_jobs_and_kv(cluster, redis_server, gcs_stubs):
    redis = f"127.0.0.1:{redis_server.port}"
    cluster.start_head("--num-cpus", 1, "--redis-address", redis)
    cluster.start_worker("--num-cpus", 2)
    cluster.start_worker("--num-cpus", 3)
    before = wait_until(lambda: (n := cluster.alive_nodes()) and len(n) == 3 and n, 30, what="3 alive nodes")

    pb, stub = kv(gcs_stubs, cluster)
    assert stub.Put(pb.KVPutRequest(ns="fun", key="f1", value=b"\x00pickled", overwrite=False)).added
    jobs = gcs_stubs[1].JobInfoServiceStub(cluster.channel())
    common_pb2 = gcs_stubs[2]
    job_id = jobs.AddJob(pb.AddJobRequest(job=common_pb2.JobInfo(entrypoint="python x.py"))).job_id

    raylets = worker_raylet_pids(cluster) + cluster.recorded_pids()["raylet"]
    os.kill(gcs_pid(cluster), signal.SIGKILL)
    wait_until(lambda: not process_alive(gcs_pid(cluster)), 5, what="the GCS to die")
    restart_gcs(cluster, "--redis-address", redis)

    # The same nodes, alive again, with their raylets never restarted.
    after = wait_until(lambda: (n := cluster.alive_nodes()) and len(n) == 3 and n, 60,
                       what="the nodes to be alive again")
    assert sorted(n["node_id"] for n in after) == sorted(n["node_id"] for n in before)
    assert all(process_alive(p) for p in raylets)
    pb, stub = kv(gcs_stubs, cluster)
    got = stub.Get(pb.KVGetRequest(ns="fun", key="f1"))
    assert got.found and got.value == b"\x00pickled"
    jobs = gcs_stubs[1].JobInfoServiceStub(cluster.channel())
    listed = jobs.GetAllJobInfo(pb.GetAllJobInfoRequest()).jobs
    assert [(j.job_id, j.entrypoint) for j in listed] == [(job_id, "python x.py")]
    assert cluster.status()["storage"] == "redis"


def test_gcs_restart_in_memory_raylets_register_again(cluster):
    cluster.start_head("--num-cpus", 1)
    cluster.start_worker("--num-cpus", 2)
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 30, what="2 alive nodes")
    os.kill(gcs_pid(cluster), signal.SIGKILL)
    wait_until(lambda: not process_alive(gcs_pid(cluster)), 5, what="the GCS to die")
    restart_gcs(cluster)
    status = wait_until(lambda: (s := cluster.status()) and
                        sum(n["state"] == "ALIVE" for n in s["nodes"]) == 2 and s,
                        60, what="the raylets to register again")
    assert status["total"]["CPU"] == 3
    assert status["storage"] == "memory"


def test_stop_leaves_no_process(cluster):
    cluster.start_head("--num-cpus", 1)
    cluster.start_worker("--num-cpus", 1)
    cluster.start_worker("--num-cpus", 1)
    pids = cluster.all_pids()
    assert len(pids) == 4  # gcs + 3 raylets
    assert all(process_alive(p) for p in pids)
    out = cluster.shoal("stop")
    assert all(not process_alive(p) for p in pids), out.stdout
    status = cluster.shoal("status", "--address", cluster.address, check=False, timeout=30)
    assert status.returncode != 0
    # Nothing to stop the second time, and that is not an error.
    assert cluster.shoal("stop").returncode == 0


def test_subscribers_hear_joins_and_deaths(cluster, gcs_stubs):
    pb, pb_grpc, common_pb2 = gcs_stubs
    cluster.start_head("--num-cpus", 1)
    wait_until(lambda: len(cluster.alive_nodes()) == 1, 30, what="the head node")
    stub = pb_grpc.NodeInfoServiceStub(cluster.channel())
    stream = stub.SubscribeNodeChanges(pb.SubscribeRequest(subscriber_id="test"))
    events = []

    def read():
        try:
            for change in stream:
                events.append((change.node.node_id, change.node.state))
        except grpc.RpcError:
            pass
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    # The stream opens with the nodes the GCS knows: once the head is read, we are subscribed.
    head = wait_until(lambda: [e for e in events if e[1] == common_pb2.NodeInfo.ALIVE], 30,
                      what="the head node in the subscription's snapshot")
    assert len(head) == 1
    cluster.start_worker("--num-cpus", 1)
    joined = wait_until(lambda: [e for e in events if e[1] == common_pb2.NodeInfo.ALIVE
                                 and e[0] != head[0][0]], 30, what="a join event")
    os.kill(worker_raylet_pids(cluster)[0], signal.SIGKILL)
    wait_until(lambda: (joined[0][0], common_pb2.NodeInfo.DEAD) in events, DEATH_DEADLINE_S,
               what="a death event for the joined node")
    stream.cancel()


# --- bad input ---

def one_line_error(proc):
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    return lines[0]


@pytest.mark.parametrize("args, needle", [
    (["--resources", "{bad json"], "resources"),
    (["--resources", '{"TPU": -1}'], "negative"),
    (["--resources", '{"TPU": "four"}'], "TPU"),
    (["--resources", "[1, 2]"], "object"),
    (["--num-cpus", "abc"], "num-cpus"),
    (["--num-cpus", "-3"], "num-cpus"),
    (["--bogus-flag", "1"], "bogus-flag"),
    (["--port", "70000"], "port"),
])
def test_bad_start_flags_fail_cleanly(cluster, args, needle):
    proc = cluster.shoal("start", "--head", "--port", free_port(), *args, check=False)
    assert proc.returncode == 2
    assert needle in one_line_error(proc)
    assert cluster.all_pids() == []


def test_unknown_subcommand_and_no_cluster(cluster):
    proc = cluster.shoal("frobnicate", check=False)
    assert proc.returncode == 2 and one_line_error(proc)
    proc = cluster.shoal("status", check=False)
    assert proc.returncode == 1 and one_line_error(proc)


def test_second_head_on_the_same_port_fails_and_the_first_lives_on(cluster):
    cluster.start_head("--num-cpus", 1)
    pids = cluster.all_pids()
    proc = cluster.shoal("start", "--head", "--port", cluster.port, check=False)
    assert proc.returncode != 0
    assert "in use" in one_line_error(proc)
    assert all(process_alive(p) for p in pids)
    assert len(cluster.all_pids()) == len(pids)  # nothing new left running
    assert len(cluster.alive_nodes()) == 1


def test_port_taken_by_another_program(cluster):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = cluster.shoal("start", "--head", "--port", port, check=False)
    assert proc.returncode != 0
    assert "in use" in one_line_error(proc)
    assert [p for p in cluster.all_pids() if process_alive(p)] == []


def test_worker_without_a_gcs_fails_fast(cluster):
    port = free_port()
    proc = cluster.shoal("start", "--address", f"127.0.0.1:{port}", "--num-cpus", 1,
                         check=False, timeout=60)
    assert proc.returncode == 1
    assert str(port) in one_line_error(proc)
    assert [p for p in cluster.all_pids() if process_alive(p)] == []


def test_gcs_rejects_malformed_requests_and_keeps_serving(cluster, gcs_stubs):
    pb, pb_grpc, common_pb2 = gcs_stubs
    cluster.start_head("--num-cpus", 1)
    channel = cluster.channel()
    nodes = pb_grpc.NodeInfoServiceStub(channel)
    kvs = pb_grpc.KVServiceStub(channel)
    jobs = pb_grpc.JobInfoServiceStub(channel)
    common = common_pb2

    def code_of(call, *args):
        with pytest.raises(grpc.RpcError) as err:
            call(*args)
        return err.value.code()

    bad_node = common.NodeInfo(node_id="zz", address="127.0.0.1", raylet_port=1)
    assert code_of(nodes.RegisterNode, pb.RegisterNodeRequest(node=bad_node)) == grpc.StatusCode.INVALID_ARGUMENT
    no_port = common.NodeInfo(node_id="ab" * 28, address="127.0.0.1", raylet_port=0)
    assert code_of(nodes.RegisterNode, pb.RegisterNodeRequest(node=no_port)) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(nodes.UnregisterNode, pb.UnregisterNodeRequest(node_id="ab" * 28)) == grpc.StatusCode.NOT_FOUND
    assert code_of(nodes.ReportResources, pb.ReportResourcesRequest(node_id="xyz")) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(kvs.Put, pb.KVPutRequest(ns="a", key="", value=b"v")) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(jobs.MarkJobFinished, pb.MarkJobFinishedRequest(job_id="01000000")) == grpc.StatusCode.NOT_FOUND
    assert code_of(jobs.AddJob, pb.AddJobRequest(job=common.JobInfo(job_id="nothex"))) == grpc.StatusCode.INVALID_ARGUMENT
    # A client that speaks no HTTP/2 at all.
    with socket.create_connection(("127.0.0.1", cluster.port)) as s:
        s.sendall(os.urandom(4096))
    assert process_alive(gcs_pid(cluster))
    assert len(cluster.alive_nodes()) == 1
    assert kvs.Put(pb.KVPutRequest(ns="a", key="k", value=b"v")).added


def test_status_verbose_shows_each_nodes_raylet_figures(cluster):
    """`shoal status -v` (Ray's `ray status -v`): per node, resources, GPU devices, object store and
    workers as its raylet reports them; --json carries them as node_stats."""
    import json
    cluster.start_head("--num-cpus", 2, "--num-gpus", 1)
    cluster.start_worker("--num-cpus", 1, "--num-gpus", 2)
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 30, what="2 alive nodes")
    out = cluster.shoal("status", "-v").stdout
    assert "Node details:" in out, out
    assert out.count("object store:") == 2, out
    assert out.count("workers:") == 2, out
    assert "GPU1: 0.00/1 in use" in out, out  # the worker node's second device
    data = json.loads(cluster.shoal("status", "--verbose", "--json").stdout)
    assert set(data["node_stats"]) == {n["node_id"] for n in data["nodes"]}
    assert all(s["object_store"]["capacity"] > 0 for s in data["node_stats"].values())
    assert "node_stats" not in json.loads(cluster.shoal("status", "--json").stdout)
    bad = cluster.shoal("status", "-x", check=False)
    assert bad.returncode == 2 and "-x" in bad.stderr
