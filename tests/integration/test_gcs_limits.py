"""Bounded GCS state (issue 12): KV values and task-event batches have limits with clear errors,
the task table keeps a bounded number of tasks (counting the ones it drops, as Ray's
task_events_max_num_task_in_gcs does), subscription streams cost no thread each, and a live node
cannot be registered a second time. The GCS stays alive and keeps serving through all of it.
"""
import os
import subprocess
import threading

import grpc

from conftest import BIN, free_port, process_alive, wait_until


def gcs_pid(cluster):
    return cluster.recorded_pids()["gcs"][0]


def gcs_threads(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError(f"no Threads line for pid {pid}")


def start_gcs(cluster, *flags):
    """A shoal-gcs of this test's own, with `flags`, on a free port and the cluster's token."""
    token_file = os.path.join(cluster.root, "gcs_token")
    with open(os.open(token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write("t" * 32)
    port = free_port()
    ready = os.path.join(cluster.root, "gcs.ready.json")
    proc = cluster.spawn([os.path.join(BIN, "shoal-gcs"), "--port", str(port), "--auth-token-file", token_file,
                          "--session-dir", os.path.join(cluster.root, "own_gcs"), "--ready-file", ready,
                          *map(str, flags)])
    wait_until(lambda: os.path.exists(ready), 30, what="the GCS to serve")
    return proc, f"127.0.0.1:{port}", "t" * 32


def refusal(fn):
    try:
        fn()
    except grpc.RpcError as e:
        return e.code(), e.details()
    raise AssertionError("the call was not refused")


def test_configured_limits_refuse_clearly_and_the_gcs_lives_on(cluster, gcs_stubs):
    pb, pb_grpc, _ = gcs_stubs
    proc, address, token = start_gcs(cluster, "--kv-max-value-bytes", 4096,
                                     "--task-events-max-num-task-in-gcs", 50,
                                     "--task-events-max-batch-size", 100)
    channel = cluster.channel(address, token=token)
    kv = pb_grpc.KVServiceStub(channel)
    events = pb_grpc.TaskEventServiceStub(channel)

    # KV: at the limit it is stored; one byte over, refused naming the limit and the size.
    assert kv.Put(pb.KVPutRequest(ns="fun", key="fits", value=b"x" * 4096), timeout=10).added
    code, details = refusal(lambda: kv.Put(pb.KVPutRequest(ns="fun", key="big", value=b"y" * 4097,
                                                           overwrite=True), timeout=10))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "4097 bytes" in details and "limit of 4096 bytes" in details and "--kv-max-value-bytes" in details
    assert not kv.Get(pb.KVGetRequest(ns="fun", key="big"), timeout=10).found
    code, _ = refusal(lambda: kv.Put(pb.KVPutRequest(ns="fun", key="fits", value=b"z" * 5000, overwrite=True),
                                     timeout=10))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert kv.Get(pb.KVGetRequest(ns="fun", key="fits"), timeout=10).value == b"x" * 4096

    # Task events: a batch over its limit is refused whole, naming the limit and its size.
    def batch(first, n):
        return pb.ReportTaskEventsRequest(events=[
            pb.TaskEvent(task_id=i.to_bytes(24, "big"), name="f", job_id="01000000", state=pb.TaskEvent.PENDING)
            for i in range(first, first + n)])
    code, details = refusal(lambda: events.ReportTaskEvents(batch(0, 101), timeout=10))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "holds 101 events" in details and "limit of 100" in details
    assert events.ListTasks(pb.ListTasksRequest(), timeout=10).num_tracked == 0
    # Within it, the table keeps the 50 most recent tasks and counts the ones it dropped.
    events.ReportTaskEvents(batch(0, 100), timeout=10)
    events.ReportTaskEvents(batch(100, 30), timeout=10)
    listed = events.ListTasks(pb.ListTasksRequest(limit=1000), timeout=10)
    assert listed.num_tracked == 50
    assert listed.tasks_dropped == 80
    assert sorted(int.from_bytes(t.task_id, "big") for t in listed.tasks) == list(range(80, 130))
    assert listed.count_by_state["PENDING"] == 50

    assert proc.poll() is None and process_alive(proc.pid)
    assert kv.Put(pb.KVPutRequest(ns="fun", key="after", value=b"v"), timeout=10).added


def test_bad_limit_flags_are_refused_naming_the_flag(tmp_path):
    for flag, value in (("--kv-max-value-bytes", 0), ("--kv-max-value-bytes", 1 << 31),
                        ("--task-events-max-num-task-in-gcs", 0), ("--task-events-max-batch-size", -1)):
        out = subprocess.run([os.path.join(BIN, "shoal-gcs"), "--port", "0", "--disable-auth",
                              "--session-dir", str(tmp_path / "s"), flag, str(value)],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 2, (flag, out.stderr)
        assert flag in out.stderr, (flag, out.stderr)


def test_default_kv_limit_through_shoal_start(cluster, gcs_stubs):
    pb, pb_grpc, _ = gcs_stubs
    cluster.start_head("--num-cpus", 1)
    kv = pb_grpc.KVServiceStub(cluster.channel())
    code, details = refusal(lambda: kv.Put(pb.KVPutRequest(ns="fun", key="huge", value=b"\0" * ((32 << 20) + 1)),
                                           timeout=60))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"{(32 << 20) + 1} bytes" in details and f"limit of {32 << 20} bytes" in details
    assert process_alive(gcs_pid(cluster))
    assert len(cluster.alive_nodes()) == 1


def test_a_live_node_cannot_register_twice(cluster, gcs_stubs):
    pb, pb_grpc, common_pb2 = gcs_stubs
    cluster.start_head("--num-cpus", 1)
    head = wait_until(lambda: cluster.alive_nodes(), 30, what="the head node")[0]
    nodes = pb_grpc.NodeInfoServiceStub(cluster.channel())
    impostor = common_pb2.NodeInfo(node_id=head["node_id"], address="127.0.0.1", raylet_port=1,
                                   resources_total=common_pb2.ResourceMap())
    code, details = refusal(lambda: nodes.RegisterNode(pb.RegisterNodeRequest(node=impostor), timeout=10))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    assert head["node_id"] in details
    # Nothing changed: the head is still registered at its own port, alive.
    after = [n for n in cluster.status()["nodes"] if n["node_id"] == head["node_id"]]
    assert len(after) == 1 and after[0]["state"] == "ALIVE" and after[0]["raylet_port"] == head["raylet_port"]


def test_300_subscription_streams_take_no_thread_each(cluster, gcs_stubs):
    pb, pb_grpc, common_pb2 = gcs_stubs
    cluster.start_head("--num-cpus", 1)
    head = wait_until(lambda: cluster.alive_nodes(), 30, what="the head node")[0]
    pid = gcs_pid(cluster)
    # Several connections, as many subscribers would come from many processes.
    channels = [cluster.channel() for _ in range(10)]
    streams, seen, lock = [], [], threading.Lock()

    def read(i, stream):
        try:
            for change in stream:
                with lock:
                    seen[i].add((change.node.node_id, change.node.state))
        except grpc.RpcError:
            pass

    readers = []
    for i in range(300):
        stub = pb_grpc.NodeInfoServiceStub(channels[i % len(channels)])
        stream = stub.SubscribeNodeChanges(pb.SubscribeRequest(subscriber_id=f"s{i}"))
        streams.append(stream)
        seen.append(set())
        t = threading.Thread(target=read, args=(i, stream), daemon=True)
        t.start()
        readers.append(t)
    alive = common_pb2.NodeInfo.ALIVE

    def all_have(node_id):
        with lock:
            return all((node_id, alive) in s for s in seen)
    # Every stream opens with the snapshot (the head): all 300 are subscribed and waiting.
    wait_until(lambda: all_have(head["node_id"]), 120, what="the head on all 300 streams")
    threads = gcs_threads(pid)
    assert threads < 60, f"the GCS runs {threads} threads with 300 open subscription streams"

    cluster.start_worker("--num-cpus", 1)
    worker = wait_until(lambda: [n for n in cluster.alive_nodes() if n["node_id"] != head["node_id"]], 60,
                        what="the worker node")[0]
    wait_until(lambda: all_have(worker["node_id"]), 120, what="the join on all 300 streams")
    assert gcs_threads(pid) < 60

    for stream in streams:
        stream.cancel()
    for t in readers:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in readers)
    for channel in channels:
        channel.close()
    # The GCS is healthy: it serves, and a new subscriber gets the snapshot.
    assert process_alive(pid)
    assert len(cluster.alive_nodes()) == 2
    stub = pb_grpc.NodeInfoServiceStub(cluster.channel())
    fresh = stub.SubscribeNodeChanges(pb.SubscribeRequest(subscriber_id="after"))
    got = {next(fresh).node.node_id for _ in range(2)}
    fresh.cancel()
    assert got == {head["node_id"], worker["node_id"]}
