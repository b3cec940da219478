"""`shoal start` for real hosts and containers: --block under a supervisor, --temp-dir,
session_latest naming the head's session, worker port ranges, the node address detected."""
import json
import os
import signal
import subprocess
import sys
import textwrap

from conftest import PYTHON_DIR, SHOAL, free_port, process_alive, session_dirs, wait_until


def start_blocking(cluster, *args):
    """`shoal start ... --block` as a supervisor runs it: a child process that stays."""
    proc = cluster.spawn([SHOAL, "start", *map(str, args), "--block"])
    wait_until(lambda: proc.poll() is not None or "Blocking" in (read_nonblocking(proc) or ""), 30,
               what="shoal start --block to have started the node")
    assert proc.poll() is None, proc.stderr.read()
    return proc


_seen = {}


def read_nonblocking(proc):
    """What `proc` has written to stdout so far (its pipe made non-blocking)."""
    import fcntl
    fd = proc.stdout.fileno()
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    try:
        chunk = proc.stdout.read()
    except (BlockingIOError, TypeError):
        chunk = None
    _seen[proc.pid] = _seen.get(proc.pid, "") + (chunk or "")
    return _seen[proc.pid]


def test_block_stops_the_node_on_sigterm(cluster):
    cluster.port = free_port()
    proc = start_blocking(cluster, "--head", "--port", cluster.port, "--num-cpus", 1, "--include-dashboard=false")
    pids = cluster.recorded_pids()
    daemons = pids["gcs"] + pids["raylet"]
    assert all(process_alive(p) for p in daemons)
    assert len(cluster.alive_nodes()) == 1
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    wait_until(lambda: not any(process_alive(p) for p in daemons), 15, what="the node's processes to stop")
    assert cluster.recorded_pids() == {}  # nothing left for `shoal stop` to find


def test_block_exits_non_zero_when_a_process_of_the_node_dies(cluster):
    cluster.port = free_port()
    proc = start_blocking(cluster, "--head", "--port", cluster.port, "--num-cpus", 1, "--include-dashboard=false")
    pids = cluster.recorded_pids()
    os.kill(pids["raylet"][0], signal.SIGKILL)
    assert proc.wait(timeout=30) == 1
    assert "raylet" in proc.stderr.read()
    wait_until(lambda: not process_alive(pids["gcs"][0]), 15, what="the GCS to be stopped too")


def test_block_on_a_joining_node(cluster):
    cluster.start_head("--num-cpus", 1)
    proc = start_blocking(cluster, "--address", cluster.address, "--num-cpus", 1)
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 20, what="the joined node")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    wait_until(lambda: len(cluster.alive_nodes()) == 1, 30, what="the node to leave")


def test_session_latest_stays_the_heads_when_a_node_joins_on_its_machine(cluster):
    cluster.start_head("--num-cpus", 1)
    latest = os.path.join(cluster.root, "session_latest")
    head_session = os.path.realpath(latest)
    token = os.path.join(latest, "auth_token")
    assert os.path.exists(token)
    cluster.start_worker("--num-cpus", 1)
    cluster.start_worker("--num-cpus", 1)
    assert os.path.realpath(latest) == head_session
    assert os.path.exists(os.path.join(latest, "processes", "gcs.json"))
    assert open(token).read().strip() == cluster.auth_token()
    assert len(session_dirs(cluster.root)) == 3  # the nodes have sessions of their own


def test_temp_dir_puts_sessions_where_told_and_stop_finds_them(cluster, tmp_path):
    other = tmp_path / "elsewhere"
    cluster.port = free_port()
    cluster.shoal("start", "--head", "--port", cluster.port, "--num-cpus", 1, "--include-dashboard=false",
                  "--temp-dir", other)
    try:
        sessions = [d for d in os.listdir(other) if d.startswith("session_2")]
        assert len(sessions) == 1
        assert os.path.exists(other / "session_latest" / "processes" / "raylet.json")
        assert not [d for d in os.listdir(cluster.root) if d.startswith("session_")]
        rec = json.load(open(other / "session_latest" / "processes" / "raylet.json"))
        assert process_alive(rec["pid"])
    finally:
        out = cluster.shoal("stop", "--temp-dir", other)
    assert "Stopped" in out.stdout
    wait_until(lambda: not process_alive(rec["pid"]), 15, what="the raylet to stop")
    bad = cluster.shoal("start", "--head", "--temp-dir", "", check=False)
    assert bad.returncode != 0 and "--temp-dir" in bad.stderr


def test_workers_listen_in_the_port_range(cluster):
    low = free_port()
    low = 20000 + low % 20000
    cluster.start_head("--num-cpus", 2, "--min-worker-port", low, "--max-worker-port", low + 40)
    env = dict(cluster.env, PYTHONPATH=PYTHON_DIR)
    code = textwrap.dedent("""
        import json, shoal
        from shoal.util import state
        shoal.init(address="auto")

        @shoal.remote
        class A:
            def ping(self):
                return 1

        actors = [A.remote() for _ in range(3)]
        shoal.get([a.ping.remote() for a in actors])
        workers = state.list_workers(detail=True)
        print("PORTS", json.dumps(sorted(int(w["address"].rsplit(":", 1)[1]) for w in workers if w.get("address"))))
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ports = json.loads(proc.stdout.split("PORTS", 1)[1])
    assert len(ports) >= 3
    assert all(low <= p <= low + 40 for p in ports), ports
    for bad in (["--min-worker-port", 5000], ["--min-worker-port", 6000, "--max-worker-port", 5000]):
        out = cluster.shoal("start", "--address", cluster.address, *bad, check=False)
        assert out.returncode != 0 and "--min-worker-port" in out.stderr


def test_a_node_joining_a_loopback_gcs_advertises_loopback(cluster):
    cluster.start_head("--num-cpus", 1)
    cluster.start_worker("--num-cpus", 1)
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 20, what="2 nodes")
    assert {n["address"] for n in cluster.alive_nodes()} == {"127.0.0.1"}


def test_a_node_refuses_a_bad_spin_budget_by_name_and_runs_with_spinning_off(cluster):
    # The workers a node starts inherit its SHOAL_SPIN_WAIT_US (src/common/spin.h): a value they
    # would refuse is refused by the node itself at start, naming it.
    cluster.env["SHOAL_SPIN_WAIT_US"] = "0"
    try:
        cluster.start_head("--num-cpus", 2)
        cluster.env["SHOAL_SPIN_WAIT_US"] = "-5"
        out = cluster.shoal("start", "--address", cluster.address, "--num-cpus", 1, check=False)
    finally:
        del cluster.env["SHOAL_SPIN_WAIT_US"]
    assert out.returncode != 0
    assert "SHOAL_SPIN_WAIT_US" in out.stdout + out.stderr and "'-5'" in out.stdout + out.stderr
    # The head's workers never spin; sync calls from a driver that spins answer right.
    code = textwrap.dedent("""
        import shoal
        shoal.init(address="auto")

        @shoal.remote
        class A:
            def __init__(self):
                self.n = 0

            def add(self):
                self.n += 1
                return self.n

        a = A.remote()
        print("CALLS", [shoal.get(a.add.remote()) for _ in range(200)] == list(range(1, 201)))
    """)
    env = dict(cluster.env, PYTHONPATH=PYTHON_DIR)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CALLS True" in proc.stdout
