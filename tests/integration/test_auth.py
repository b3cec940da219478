"""Every RPC of a Shoal cluster asks for the cluster token (issue 12).

Tried as an attacker on the network would: a client that reaches the ports but has no token (or
a wrong one). Every method of every service of the GCS, a raylet and a worker answers
UNAUTHENTICATED, and none of the attacks that worked before does anything: no worker command
run, no KV value replaced, no fake node, no node or actor killed. The cluster keeps working.
"""
import os
import stat
import subprocess
import sys
import time

import grpc
import pytest

from conftest import BIN, PYTHON_DIR, SHOAL, Cluster, free_port, process_alive, session_dirs, wait_until

sys.path.insert(0, PYTHON_DIR)

import shoal as ray  # noqa: E402


def methods(module, only=None, skip=()):
    """(full method name, server-streaming?) for every method of every service in `module` (or
    of the services named in `only`, less those in `skip`)."""
    out = []
    for service in module.DESCRIPTOR.services_by_name.values():
        if (only is not None and service.name not in only) or service.name in skip:
            continue
        for m in service.methods:
            out.append((f"/{service.full_name}/{m.name}", bool(getattr(m, "server_streaming", False))))
    assert out, module
    return out


def call(channel, name, streaming, timeout=10):
    """Calls `name` with an empty request; answers the status code."""
    try:
        if streaming:
            for _ in channel.unary_stream(name)(b"", timeout=timeout):
                pass
        else:
            channel.unary_unary(name)(b"", timeout=timeout)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code(), e.details()


@ray.remote
class Holder:
    def ping(self):
        return "pong"


def test_every_method_of_every_server_refuses_calls_without_the_token(driver, gcs_stubs):
    import shoalpb.gcs_pb2 as gcs_pb2
    import shoalpb.raylet_pb2 as raylet_pb2
    import shoalpb.worker_pb2 as worker_pb2
    cluster = driver
    holder = Holder.options(name="auth-holder").remote()
    assert ray.get(holder.ping.remote()) == "pong"
    actors = gcs_stubs[1].ActorServiceStub(cluster.channel())
    worker = [a for a in actors.ListActors(gcs_stubs[0].ListActorsRequest(), timeout=10).actors
              if a.actor_id == holder._actor_id][0].worker_address
    nodes_before = sorted(n["node_id"] for n in cluster.alive_nodes())
    raylets = [f"{n['address']}:{n['raylet_port']}" for n in cluster.alive_nodes()]

    # EntrypointService is served by a job's entrypoint holder (its own test below).
    servers = [(cluster.address, methods(gcs_pb2))] + \
              [(r, methods(raylet_pb2, skip={"EntrypointService"})) for r in raylets] + [(worker, methods(worker_pb2))]
    checked = 0
    for address, names in servers:
        for token in (None, "x" * 32):
            channel = cluster.channel(address, token=token)
            for name, streaming in names:
                result = call(channel, name, streaming)
                assert result != grpc.StatusCode.OK, f"{name} at {address} answered without a valid token"
                code, details = result
                assert code == grpc.StatusCode.UNAUTHENTICATED, (name, address, code, details)
                assert ("wrong cluster token" if token else "requires its token") in details
                checked += 1
    assert checked >= 2 * (len(methods(gcs_pb2)) + len(methods(worker_pb2)))

    # Nothing any of those calls carried was acted on: the same nodes, the actor still serves.
    assert sorted(n["node_id"] for n in cluster.alive_nodes()) == nodes_before
    assert ray.get(holder.ping.remote()) == "pong"
    # And with the token the same servers answer.
    assert call(cluster.channel(), "/shoal.rpc.NodeInfoService/GetAllNodeInfo", False) == grpc.StatusCode.OK
    for r in raylets:
        assert call(cluster.channel(r), "/shoal.rpc.NodeManagerService/HealthCheck", False) == grpc.StatusCode.OK
    ray.kill(holder)


def test_the_attacks_of_issue_12_do_nothing(driver, gcs_stubs, tmp_path):
    pb, pb_grpc, common_pb2 = gcs_stubs
    import shoalpb.raylet_pb2 as raylet_pb2
    import shoalpb.raylet_pb2_grpc as raylet_pb2_grpc
    import shoalpb.worker_pb2 as worker_pb2
    import shoalpb.worker_pb2_grpc as worker_pb2_grpc
    cluster = driver
    open_gcs = cluster.channel(token=None)

    def refused(fn):
        with pytest.raises(grpc.RpcError) as info:
            fn()
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, info.value
        return True

    # 1. A lease whose worker command is the attacker's.
    marker = tmp_path / "pwned"
    raylet = [n for n in cluster.alive_nodes()][0]
    lease = raylet_pb2_grpc.LeaseServiceStub(cluster.channel(f"{raylet['address']}:{raylet['raylet_port']}", token=None))
    request = raylet_pb2.RequestWorkerLeaseRequest(worker_command=["/bin/sh", "-c", f"touch {marker}"])
    assert refused(lambda: lease.RequestWorkerLease(request, timeout=10))

    # 2. Overwriting a value in the GCS KV (where function pickles live).
    kv_open = pb_grpc.KVServiceStub(open_gcs)
    kv = pb_grpc.KVServiceStub(cluster.channel())
    kv.Put(pb.KVPutRequest(ns="auth-test", key="fn", value=b"original", overwrite=True), timeout=10)
    assert refused(lambda: kv_open.Put(pb.KVPutRequest(ns="auth-test", key="fn", value=b"evil", overwrite=True),
                                       timeout=10))
    assert refused(lambda: kv_open.Get(pb.KVGetRequest(ns="auth-test", key="fn"), timeout=10))
    assert kv.Get(pb.KVGetRequest(ns="auth-test", key="fn"), timeout=10).value == b"original"

    # 3. A fake node with 1,000 CPUs, and 4. unregistering a real node.
    nodes_open = pb_grpc.NodeInfoServiceStub(open_gcs)
    cpus = ray.cluster_resources()["CPU"]
    fake = common_pb2.NodeInfo(node_id="ab" * 14, address="127.0.0.1", raylet_port=1)
    fake.resources_total.amounts["CPU"] = 1000 * 10000
    assert refused(lambda: nodes_open.RegisterNode(pb.RegisterNodeRequest(node=fake), timeout=10))
    assert refused(lambda: nodes_open.UnregisterNode(pb.UnregisterNodeRequest(node_id=raylet["node_id"]), timeout=10))

    # 5. A worker's Exit and a pickled task pushed straight to a worker.
    holder = Holder.remote()
    assert ray.get(holder.ping.remote()) == "pong"
    actors = pb_grpc.ActorServiceStub(cluster.channel())
    worker = [a for a in actors.ListActors(pb.ListActorsRequest(), timeout=10).actors
              if a.actor_id == holder._actor_id][0].worker_address
    stub = worker_pb2_grpc.CoreWorkerServiceStub(cluster.channel(worker, token=None))
    assert refused(lambda: stub.Exit(worker_pb2.ExitRequest(), timeout=10))
    assert refused(lambda: stub.PushTask(worker_pb2.PushTaskRequest(), timeout=10))

    time.sleep(1.0)  # anything the refused calls had started would have happened by now
    assert not marker.exists()
    assert ray.get(holder.ping.remote()) == "pong"
    assert ray.cluster_resources()["CPU"] == cpus
    assert raylet["node_id"] in [n["node_id"] for n in cluster.alive_nodes()]
    ray.kill(holder)


def test_even_with_the_token_a_lease_cannot_name_a_program_of_its_choice(driver, gcs_stubs, tmp_path):
    """Least authority: a raylet starts only Shoal's programs, its runtime-env packages, its
    --worker-program-dirs, and `-m shoal.worker` under a trusted Python, whoever asks."""
    _, _, common_pb2 = gcs_stubs
    import shoalpb.raylet_pb2 as raylet_pb2
    import shoalpb.raylet_pb2_grpc as raylet_pb2_grpc
    cluster = driver
    marker = tmp_path / "pwned"
    raylet = cluster.alive_nodes()[0]
    lease = raylet_pb2_grpc.LeaseServiceStub(cluster.channel(f"{raylet['address']}:{raylet['raylet_port']}"))
    job = "01000000"

    def rejected(**fields):
        request = raylet_pb2.RequestWorkerLeaseRequest(job_id=job, **fields)
        request.resources.amounts["CPU"] = 10000
        reply = lease.RequestWorkerLease(request, timeout=30)
        assert reply.kind == raylet_pb2.RequestWorkerLeaseReply.REJECTED, reply
        return reply.message

    for command in (["/bin/sh", "-c", f"touch {marker}"], ["sh", "-c", f"touch {marker}"],
                    [sys.executable, "-c", f"open({str(marker)!r}, 'w')"],
                    [sys.executable, "-m", "shoal.worker", "-c", "x"]):
        message = rejected(worker_command=command)
        assert "not one this node may start" in message or "must be exactly `-m shoal.worker`" in message \
            or "not an absolute path" in message, (command, message)
    # A runtime env's interpreter is run to build a virtualenv: it must be trusted too.
    env = common_pb2.RuntimeEnv(interpreter="/bin/sh", pip_packages=["requests"])
    message = rejected(worker_command=[sys.executable, "-m", "shoal.worker"], runtime_env=env)
    assert "is not an interpreter this node trusts" in message, message
    time.sleep(1.0)
    assert not marker.exists()
    # Real work goes on: a Python task (this interpreter) and a C++ driver in Shoal's bin directory.
    assert ray.get(ray.remote(lambda: 41 + 1).remote(), timeout=60) == 42
    proc = subprocess.run([os.path.join(BIN, "shoal_task_driver"), "basics", "--address", cluster.address],
                          env=cluster.env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_node_started_with_a_missing_python_or_program_dir_refuses_to_start(cluster, tmp_path):
    for flag, value in (("--python-executable", str(tmp_path / "no-python")),
                        ("--worker-program-dirs", str(tmp_path / "no-dir")),
                        ("--python-executable", "python3")):
        proc = cluster.shoal("start", "--head", "--port", free_port(), flag, value, check=False)
        assert proc.returncode != 0, proc.stdout
        assert flag in proc.stderr and "is not an absolute path to an existing" in proc.stderr, proc.stderr
        assert cluster.all_pids() == []


def test_token_file_and_clients(cluster, tmp_path):
    cluster.start_head("--num-cpus", 1)
    token = cluster.auth_token()
    assert len(token) == 32
    files = [os.path.join(s, "auth_token") for s in session_dirs(cluster.root)
             if os.path.exists(os.path.join(s, "auth_token"))]
    assert files and all(stat.S_IMODE(os.stat(f).st_mode) == 0o600 for f in files)
    # Every session (the token, logs, the store's socket) is its owner's only.
    for s in session_dirs(cluster.root):
        assert stat.S_IMODE(os.stat(s).st_mode) == 0o700, s
        assert stat.S_IMODE(os.stat(os.path.join(s, "logs")).st_mode) == 0o700, s

    # `shoal status` on the head's machine finds the token; with a wrong one it says so.
    assert cluster.status()["nodes"]
    wrong = dict(cluster.env, SHOAL_AUTH_TOKEN="y" * 32)
    proc = subprocess.run([SHOAL, "status", "--address", cluster.address], env=wrong, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0 and "wrong cluster token" in proc.stderr

    # Another machine (another temp root) joins with --auth-token, not without.
    other = Cluster(str(tmp_path / "other"))
    os.makedirs(other.root)
    other.port = cluster.port
    try:
        proc = other.shoal("start", "--address", cluster.address, "--num-cpus", 1, check=False)
        assert proc.returncode != 0
        assert "token" in proc.stderr
        # Bad token flags: a clear one-line error, nothing started.
        for args, needle in [(["--auth-token", "abc"], "too short"),
                             (["--auth-token-file", str(tmp_path / "none")], "cannot read the token file"),
                             (["--auth-token", token, "--disable-auth"], "contradicts")]:
            proc = other.shoal("start", "--address", cluster.address, "--num-cpus", 1, *args, check=False)
            assert proc.returncode != 0 and needle in proc.stderr, (args, proc.stderr)
        proc = other.shoal("start", "--head", "--port", 0, "--auth-token", "short", check=False)
        assert proc.returncode != 0 and "too short" in proc.stderr
        assert [p for p in other.all_pids() if process_alive(p)] == []
        other.shoal("start", "--address", cluster.address, "--num-cpus", 1, "--auth-token", token)
        wait_until(lambda: len(cluster.alive_nodes()) == 2, 30, what="the second node")
    finally:
        other.teardown()


def test_a_head_takes_the_token_it_is_given(cluster, tmp_path):
    """A platform keeps the token in its secret store and gives the same file to the head and the
    workers (deploy/k8s): the head uses it instead of making one."""
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-" + "k" * 30 + "\n")
    os.chmod(secret, 0o600)
    cluster.start_head("--num-cpus", 1, "--auth-token-file", secret)
    assert cluster.auth_token() == "s3cr3t-" + "k" * 30
    cluster.start_worker("--num-cpus", 1, "--auth-token-file", secret)
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 30, what="the worker to join with the shared token")


def test_daemons_refuse_to_run_without_a_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    env["SHOAL_TMPDIR"] = str(tmp_path)
    proc = subprocess.run([os.path.join(BIN, "shoal-gcs"), "--port", "0"], env=env, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2
    assert "no cluster token" in proc.stderr and "--disable-auth" in proc.stderr
    proc = subprocess.run([os.path.join(BIN, "shoal-gcs"), "--port", "0", "--auth-token-file", str(tmp_path / "no")],
                          env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "cannot read the token file" in proc.stderr


def test_disable_auth_opens_the_cluster_with_a_warning(cluster, gcs_stubs):
    pb, pb_grpc, _ = gcs_stubs
    proc = cluster.start_head("--num-cpus", 1, "--disable-auth")
    assert "auth is disabled" in proc.stderr
    assert [s for s in session_dirs(cluster.root) if os.path.exists(os.path.join(s, "auth_token"))] == []
    nodes = pb_grpc.NodeInfoServiceStub(cluster.channel(token=None))
    assert len(nodes.GetAllNodeInfo(pb.GetAllNodeInfoRequest(), timeout=10).nodes) == 1
    # A node joins such a cluster without a token, and says that it runs open.
    proc = cluster.start_worker("--num-cpus", 1)
    assert "auth disabled" in proc.stderr
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 30, what="the second node")


def test_a_jobs_entrypoint_holder_refuses_calls_without_the_token(cluster, tmp_path):
    """The process holding a job's entrypoint resources runs the entrypoint for the dashboard
    (src/dashboard/entrypoint_runner.h): without the token it runs nothing."""
    import shoalpb.raylet_pb2 as raylet_pb2
    cluster.start_head("--num-cpus", 2, dashboard=True)
    marker = tmp_path / "ran"
    status, body = cluster.api("POST", "/api/jobs/", {"entrypoint": "sleep 300", "entrypoint_num_cpus": 1})
    assert status == 200, body
    job_id = body["submission_id"]
    wait_until(lambda: cluster.api("GET", f"/api/jobs/{job_id}")[1]["status"] == "RUNNING", 60, what="RUNNING")
    env = dict(cluster.env, PYTHONPATH=PYTHON_DIR)
    code = ("import json, shoal; from shoal.util import state; shoal.init(address='auto'); "
            "print(json.dumps([w['address'] for w in state.list_workers(detail=True) "
            "if w.get('job_id') == 'f0ffffff' and w.get('address')]))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    import json
    holders = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(holders) == 1, proc.stdout
    request = raylet_pb2.RunEntrypointRequest(entrypoint=f"touch {marker}").SerializeToString()
    for token in (None, "x" * 32):
        channel = cluster.channel(holders[0], token=token)
        try:
            for _ in channel.unary_stream("/shoal.rpc.EntrypointService/Run")(request, timeout=10):
                pass
            pytest.fail("the holder ran an entrypoint without the token")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e
    assert not marker.exists()
    assert cluster.api("POST", f"/api/jobs/{job_id}/stop")[0] == 200
