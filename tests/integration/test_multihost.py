"""A cluster of real hosts on one machine: a head in one network namespace and two worker nodes
in two others, each advertising its own non-loopback address (the workers' detected from the
route to the GCS), plus a client in a fourth namespace. The namespaces are joined to the head's
by veth pairs (the head forwards between them); no traffic leaves the machine. Needs root (as CI
runs) for `ip netns`; skipped otherwise."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import PYTHON_DIR, SHOAL, free_port, ip


@pytest.fixture
def hosts():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    tag = os.getpid() % 200 + 20
    pid = os.getpid()
    names = {n: f"shm{pid}{n[0]}" for n in ("head", "a", "b", "client")}
    if ip("netns", "add", names["head"], check=False).returncode != 0:
        pytest.skip("cannot create a network namespace here")
    made = [names["head"]]
    try:
        ip("-n", names["head"], "link", "set", "lo", "up")
        addresses = {"head": f"10.215.{tag}.1"}
        for i, name in enumerate(("a", "b", "client")):
            ns = names[name]
            ip("netns", "add", ns)
            made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
            head_side, ns_side = f"10.215.{tag}.{4 * i + 1}", f"10.215.{tag}.{4 * i + 2}"
            ip("link", "add", f"shm{pid}{name[0]}h", "netns", names["head"], "type", "veth", "peer", "name",
               f"shm{pid}{name[0]}n", "netns", ns)
            ip("-n", names["head"], "addr", "add", f"{head_side}/30", "dev", f"shm{pid}{name[0]}h")
            ip("-n", names["head"], "link", "set", f"shm{pid}{name[0]}h", "up")
            ip("-n", ns, "addr", "add", f"{ns_side}/30", "dev", f"shm{pid}{name[0]}n")
            ip("-n", ns, "link", "set", f"shm{pid}{name[0]}n", "up")
            ip("-n", ns, "route", "add", "default", "via", head_side)
            addresses[name] = ns_side
        # The head's namespace routes between the others (node A's objects reach node B).
        subprocess.run(["ip", "netns", "exec", names["head"], "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
        yield {"ns": names, "ip": addresses}
    finally:
        for ns in made:
            ip("netns", "del", ns, check=False)


def in_ns(ns, argv):
    return ["ip", "netns", "exec", ns, *map(str, argv)]


def listening(ns):
    """The TCP addresses listened on in namespace `ns`."""
    out = subprocess.run(in_ns(ns, ["ss", "-ltnH"]), capture_output=True, text=True, timeout=30, check=True).stdout
    return [line.split()[3] for line in out.splitlines() if line.strip()]


DRIVER = textwrap.dedent("""
    import hashlib, json, os
    import numpy as np
    import shoal

    shoal.init(address=os.environ["SHOAL_TEST_ADDRESS"])

    @shoal.remote(num_cpus=0, resources={"A": 1})
    def produce():
        data = np.arange(200 << 20, dtype=np.uint8)  # 200 MiB, made on node A
        return data

    @shoal.remote(num_cpus=0, resources={"B": 1})
    def digest(data):
        return hashlib.sha256(data.tobytes()).hexdigest(), shoal.get_runtime_context().get_node_id()

    @shoal.remote(num_cpus=0, resources={"B": 1})
    class Counter:
        def __init__(self):
            self.n = 0
        def add(self, k):
            self.n += k
            return self.n, shoal.get_runtime_context().get_node_id()

    ref = produce.remote()
    remote_digest, b_node = shoal.get(digest.remote(ref), timeout=300)   # pulled A -> B
    local = shoal.get(ref, timeout=300)                                   # pulled A -> head
    counter = Counter.remote()
    counts = [shoal.get(counter.add.remote(k), timeout=60) for k in (1, 2, 3)]
    nodes = {n["NodeID"]: n["NodeManagerAddress"] for n in shoal.nodes() if n["Alive"]}
    print("RESULT " + json.dumps({
        "digest_on_b": remote_digest,
        "digest_here": hashlib.sha256(local.tobytes()).hexdigest(),
        "b_node_address": nodes[b_node],
        "counts": [c for c, _ in counts],
        "actor_node_address": nodes[counts[0][1]],
        "addresses": sorted(nodes.values()),
    }))
    shoal.shutdown()
""")

JOB = textwrap.dedent("""
    import shoal
    shoal.init()

    @shoal.remote(num_cpus=0, resources={"A": 1})
    def where():
        return shoal.get_runtime_context().get_node_id()

    print("JOB RAN ON", shoal.get(where.remote(), timeout=120))
""")


def test_nodes_in_their_own_namespaces_run_tasks_actors_objects_and_jobs(cluster, hosts, tmp_path):
    ns, addr = hosts["ns"], hosts["ip"]
    port, dashboard_port = free_port(), free_port()
    cluster.host, cluster.port = addr["head"], port
    run = lambda argv, **kw: subprocess.run(in_ns(ns["head"], argv), env=cluster.env, capture_output=True,  # noqa: E731
                                            text=True, timeout=120, **kw)
    head = run([SHOAL, "start", "--head", "--port", port, "--node-ip-address", addr["head"], "--num-cpus", 1,
                "--num-gpus", 0, "--dashboard-host", addr["head"], "--dashboard-port", dashboard_port])
    assert head.returncode == 0, head.stderr
    for name, resource in (("a", "A"), ("b", "B")):
        # No --node-ip-address: the node finds its own address on the route to the GCS.
        joined = subprocess.run(in_ns(ns[name], [SHOAL, "start", "--address", f"{addr['head']}:{port}",
                                                 "--num-cpus", 1, "--resources", json.dumps({resource: 10})]),
                                env=cluster.env, capture_output=True, text=True, timeout=120)
        assert joined.returncode == 0, joined.stderr
        assert f"Raylet:       {addr[name]}:" in joined.stdout, joined.stdout
    status = json.loads(run([SHOAL, "status", "--address", f"{addr['head']}:{port}", "--json"]).stdout)
    assert sorted(n["address"] for n in status["nodes"] if n["state"] == "ALIVE") == sorted(
        [addr["head"], addr["a"], addr["b"]])

    # Tasks, an actor, and a 200 MiB object pulled from node A to node B and to the head.
    env = dict(cluster.env, PYTHONPATH=PYTHON_DIR, SHOAL_TEST_ADDRESS=f"{addr['head']}:{port}")
    proc = subprocess.run(in_ns(ns["head"], [sys.executable, "-c", DRIVER]), env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert result["digest_on_b"] == result["digest_here"]
    assert result["b_node_address"] == addr["b"]
    assert result["counts"] == [1, 3, 6]
    assert result["actor_node_address"] == addr["b"]
    assert result["addresses"] == sorted([addr["head"], addr["a"], addr["b"]])

    # A job submitted from a fourth namespace through the dashboard.
    base = f"http://{addr['head']}:{dashboard_port}"
    client = textwrap.dedent(f"""
        import json, sys, time, urllib.request
        token = open(sys.argv[1]).read().strip()
        def call(method, path, body=None):
            req = urllib.request.Request({base!r} + path, method=method,
                                         data=json.dumps(body).encode() if body is not None else None)
            req.add_header("Authorization", "Bearer " + token)
            req.add_header("Content-Type", "application/json")
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())
        job = call("POST", "/api/jobs/", {{"entrypoint": sys.argv[2],
                                           "runtime_env": {{"env_vars": {{"PYTHONPATH": {PYTHON_DIR!r}}}}}}})
        for _ in range(300):
            info = call("GET", "/api/jobs/" + job["submission_id"])
            if info["status"] in ("SUCCEEDED", "FAILED", "STOPPED"):
                break
            time.sleep(0.5)
        logs = call("GET", "/api/jobs/" + job["submission_id"] + "/logs")["logs"]
        print("STATUS " + info["status"])
        print(logs)
    """)
    job_file = tmp_path / "job.py"
    job_file.write_text(JOB)
    token_file = tmp_path / "token"
    token_file.write_text(cluster.auth_token())
    proc = subprocess.run(in_ns(ns["client"], [sys.executable, "-c", client, token_file,
                                               f"{sys.executable} {job_file}"]),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "STATUS SUCCEEDED" in proc.stdout, proc.stdout[-3000:]
    a_node = next(n["node_id"] for n in status["nodes"] if n["address"] == addr["a"])
    assert f"JOB RAN ON {a_node}" in proc.stdout

    # Nothing listens on every address: each server is bound to its node's own address.
    for name in ("head", "a", "b"):
        for local in listening(ns[name]):
            host = local.rsplit(":", 1)[0]
            assert host not in ("0.0.0.0", "*", "[::]", "::"), f"{name}: something listens on {local}"
