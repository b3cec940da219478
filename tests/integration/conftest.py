"""Fixtures for integration tests: real Shoal clusters on loopback, driven through the CLI.

Every cluster lives under its own temp root (SHOAL_TMPDIR), so tests never see or stop a
cluster they did not start. Everything a test starts is stopped by pid at teardown.
"""
import glob
import grpc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(REPO, "build", "bin")
SHOAL = os.path.join(BIN, "shoal")


# Health checks in tests: quick enough to see deaths in seconds, loose enough that a loaded
# 2-core machine does not declare a live raylet dead.
HEALTH_PERIOD_MS = 250
HEALTH_TIMEOUT_MS = 2000
HEALTH_THRESHOLD = 4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_dirs(root):
    """The session directories under `root` (not the session_latest link)."""
    return [p for p in glob.glob(os.path.join(root, "session_*")) if not os.path.islink(p)]


def process_alive(pid):
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def ip(*args, check=True):
    """Runs iproute2's `ip` (network namespaces and veth pairs for the multi-host tests)."""
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def wait_until(predicate, timeout, interval=0.1, what="condition"):
    """Polls `predicate` until it is truthy; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class TokenInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call, as Shoal's own clients do."""

    def __init__(self, token):
        self.metadata = [("authorization", f"Bearer {token}")]

    def _details(self, details):
        return details._replace(metadata=list(details.metadata or []) + self.metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)


class Cluster:
    """A handle on the Shoal processes started under one temp root."""

    def __init__(self, root):
        self.root = root
        self.env = dict(os.environ, SHOAL_TMPDIR=root)
        self.env.pop("SHOAL_ADDRESS", None)
        self.env.pop("SHOAL_AUTH_TOKEN", None)  # another cluster's, exported for in-process drivers
        self.env.pop("SHOAL_AUTH_TOKEN_FILE", None)
        self.extra_pids = []  # started by the test itself, not through `shoal start`
        self.port = None

    @property
    def address(self):
        return f"{getattr(self, 'host', '127.0.0.1')}:{self.port}"  # host: a test's own namespace address

    def shoal(self, *args, check=True, timeout=60):
        proc = subprocess.run([SHOAL, *map(str, args)], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"shoal {' '.join(map(str, args))} exited {proc.returncode}:\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def start_head(self, *args, port=None, dashboard=False):
        """Starts a head. Without `dashboard` it runs none (--include-dashboard=false), so that
        heads started side by side never compete for port 8265; with it, the dashboard listens
        on a free port (see dashboard())."""
        self.port = port or free_port()
        dash = ["--dashboard-port", 0] if dashboard else ["--include-dashboard=false"]
        proc = self.shoal("start", "--head", "--port", self.port,
                          "--health-check-period-ms", HEALTH_PERIOD_MS, "--health-check-timeout-ms", HEALTH_TIMEOUT_MS,
                          "--health-check-failure-threshold", HEALTH_THRESHOLD, *dash, *args)
        # Drivers this test runs in its own process find the token as a user's would: in
        # $SHOAL_AUTH_TOKEN (subprocesses run with self.env find it through SHOAL_TMPDIR).
        if "--disable-auth" not in map(str, args):
            self.exported_token = self.auth_token()
            os.environ["SHOAL_AUTH_TOKEN"] = self.exported_token
        return proc

    def dashboard(self):
        """The head's dashboard.ready.json: {url, port, pid, token_file, ...}."""
        for session in session_dirs(self.root):
            path = os.path.join(session, "dashboard.ready.json")
            if os.path.exists(path):
                with open(path) as f:
                    return json.load(f)
        raise AssertionError("no dashboard.ready.json under " + self.root)

    def auth_token(self):
        """The cluster's token (every session of this root holds the same one)."""
        for session in session_dirs(self.root):
            path = os.path.join(session, "auth_token")
            if os.path.exists(path):
                with open(path) as f:
                    return f.read().strip()
        raise AssertionError("no auth_token under " + self.root)

    def channel(self, address=None, token=True):
        """A gRPC channel to `address` (default: the GCS) whose calls carry the cluster's token
        (token=True), a given token (a str), or none (token=None)."""
        channel = grpc.insecure_channel(address or self.address)
        if token is None:
            return channel
        return grpc.intercept_channel(channel, TokenInterceptor(self.auth_token() if token is True else token))

    def api(self, method, path, body=None, token=True, headers=None, raw=None):
        """Calls the dashboard; answers (HTTP status, parsed JSON body or text)."""
        import urllib.error
        import urllib.request
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.dashboard()["url"] + path, data=data, method=method)
        if token and (isinstance(token, str) or self.dashboard().get("auth", True)):
            request.add_header("Authorization", "Bearer " + (token if isinstance(token, str) else self.auth_token()))
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def start_worker(self, *args):
        return self.shoal("start", "--address", self.address, *args)

    def status(self):
        return json.loads(self.shoal("status", "--address", self.address, "--json").stdout)

    def alive_nodes(self):
        return [n for n in self.status()["nodes"] if n["state"] == "ALIVE"]

    def recorded_pids(self):
        """Pids of every process `shoal start` recorded under this root, by name."""
        out = {}
        for session in session_dirs(self.root):
            for path in glob.glob(os.path.join(session, "processes", "*.json")):
                with open(path) as f:
                    rec = json.load(f)
                out.setdefault(rec["name"], []).append(rec["pid"])
        return out

    def all_pids(self):
        return [p for pids in self.recorded_pids().values() for p in pids] + self.extra_pids

    def spawn(self, argv, **kwargs):
        """Starts a process the test owns; it is killed at teardown."""
        proc = subprocess.Popen(argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, **kwargs)
        self.extra_pids.append(proc.pid)
        return proc

    def teardown(self):
        if getattr(self, "exported_token", None) and os.environ.get("SHOAL_AUTH_TOKEN") == self.exported_token:
            del os.environ["SHOAL_AUTH_TOKEN"]
        pids = self.all_pids()
        subprocess.run([SHOAL, "stop", "--force"], env=self.env, capture_output=True, timeout=60)
        for pid in pids:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)


def worker_deaths(root, tail_lines=40):
    """What the raylets under `root` logged of workers that died, with the end of the error log
    of each one a signal killed (its stack, from the crash handler): printed when a test fails,
    so that a crash in CI says where it happened."""
    out, shown = [], set()
    for session in sorted(session_dirs(root)):
        for log in sorted(glob.glob(os.path.join(session, "logs", "raylet*.log"))):
            with open(log, errors="replace") as f:
                for line in f:
                    if "killed by signal" not in line and "exited with code" not in line:
                        continue
                    out.append(line.rstrip())
                    path = line.rsplit("; see ", 1)[1].strip() if "; see " in line else None
                    if "killed by signal" in line and path and path not in shown:
                        shown.add(path)
                        try:
                            with open(path, errors="replace") as err:
                                out.extend("    " + l.rstrip() for l in err.readlines()[-tail_lines:])
                        except OSError:
                            pass
    return "\n".join(out)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "report_" + report.when, report)


@pytest.fixture
def cluster(request):
    # A short root, so that each raylet's object-store socket fits in a Unix socket path
    # (108 bytes) inside its session directory and nothing is placed outside the root.
    root = tempfile.mkdtemp(prefix="shoal-t-", dir="/tmp")
    c = Cluster(root)
    yield c
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        deaths = worker_deaths(root)
        if deaths:
            print(f"--- workers that died in this test's cluster ---\n{deaths}")
    c.teardown()
    shutil.rmtree(root, ignore_errors=True)


class RedisServer:
    def __init__(self, workdir):
        self.port = free_port()
        self.workdir = workdir
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.workdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers, 10, what="redis-server to answer")

    def _answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def redis_required():
    """In CI (or with SHOAL_REQUIRE_REDIS=1) a missing redis-server fails the Redis tests."""
    return any(os.environ.get(v, "") not in ("", "0", "false") for v in ("CI", "SHOAL_REQUIRE_REDIS"))


@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None:
        if redis_required():
            pytest.fail("redis-server is not installed, and $CI or $SHOAL_REQUIRE_REDIS says the "
                        "Redis tests must run (scripts/setup.sh installs it)")
        pytest.skip("redis-server is not installed (scripts/setup.sh installs it)")
    server = RedisServer(str(tmp_path))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_stubs(tmp_path_factory):
    """Python gRPC stubs for Shoal's protos, generated for this test session.

    The protos are copied under the package name `shoalpb` so that the stubs never shadow
    Shoal's own Python package.
    """
    from grpc_tools import protoc
    work = tmp_path_factory.mktemp("stubs")
    src = work / "src" / "shoalpb"
    src.mkdir(parents=True)
    for path in glob.glob(os.path.join(REPO, "proto", "shoal", "*.proto")):
        with open(path) as f:
            text = f.read().replace('import "shoal/', 'import "shoalpb/')
        (src / os.path.basename(path)).write_text(text)
    out = work / "out"
    out.mkdir()
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    for name in ("common", "raylet", "worker", "gcs"):  # gcs.proto imports the others
        rc = protoc.main(["protoc", f"-I{work / 'src'}", f"-I{include}", f"--python_out={out}",
                          f"--grpc_python_out={out}", f"shoalpb/{name}.proto"])
        assert rc == 0, f"protoc failed on {name}.proto"
    sys.path.insert(0, str(out))
    import shoalpb.gcs_pb2 as gcs_pb2  # noqa: E402
    import shoalpb.gcs_pb2_grpc as gcs_pb2_grpc  # noqa: E402
    import shoalpb.common_pb2 as common_pb2  # noqa: E402
    return gcs_pb2, gcs_pb2_grpc, common_pb2


# ---------------------------------------------------------------------------------------------
# Shared by the task and actor tests.


def start_three_nodes(cluster, gpus_a=1, gpus_b=1):
    """A head (2 CPUs, no GPU) and two worker nodes (2 CPUs each) with custom resources A or B,
    and W on both, so that work can be sent to one node or to either worker node."""
    cluster.start_head("--num-cpus", 2, "--num-gpus", 0)
    cluster.start_worker("--num-cpus", 2, "--num-gpus", gpus_a, "--resources", '{"A": 100, "W": 100}')
    cluster.start_worker("--num-cpus", 2, "--num-gpus", gpus_b, "--resources", '{"B": 100, "W": 100}')
    wait_until(lambda: len(cluster.alive_nodes()) == 3, 20, what="3 alive nodes")


def worker_raylet_pids(cluster):
    """Raylet pids recorded in sessions that hold no GCS (the worker nodes)."""
    out = []
    for session in session_dirs(cluster.root):
        names = {}
        for path in glob.glob(os.path.join(session, "processes", "*.json")):
            with open(path) as f:
                rec = json.load(f)
            names.setdefault(rec["name"], []).append(rec["pid"])
        if "gcs" not in names:
            out += names.get("raylet", [])
    return out


RESOURCES_BACK_S = 60  # generous bound for polling: leases go back after a short idle time


def resources_all_back(cluster):
    """True once every alive node has all of its resources available again."""
    status = cluster.status()
    for node in status["nodes"]:
        if node["state"] != "ALIVE":
            continue
        for name, total in node["resources_total"].items():
            if abs(node["resources_available"].get(name, 0) - total) > 1e-9:
                return False
    return status["available"] == status["total"] and status


def assert_resources_back(cluster):
    wait_until(lambda: resources_all_back(cluster), RESOURCES_BACK_S, interval=0.25,
               what="every resource to be available again (no leaked leases)")


def restart_gcs(cluster, *extra):
    """Starts shoal-gcs again on the head's port, as the head's `shoal start` did."""
    token_file = os.path.join(cluster.root, "session_token")
    if not os.path.exists(token_file):
        with open(os.open(token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(cluster.auth_token())
    proc = cluster.spawn([os.path.join(BIN, "shoal-gcs"), "--port", str(cluster.port),
                          "--auth-token-file", token_file,
                          "--health-check-period-ms", str(HEALTH_PERIOD_MS),
                          "--health-check-timeout-ms", str(HEALTH_TIMEOUT_MS),
                          "--health-check-failure-threshold", str(HEALTH_THRESHOLD), *extra])
    return proc


def node_with(cluster, resource):
    """The alive node that offers `resource`."""
    nodes = [n for n in cluster.alive_nodes() if resource in n["resources_total"]]
    assert len(nodes) == 1, nodes
    return nodes[0]


def last_json(text):
    """The last line of `text` that is a JSON document (test drivers print one per scenario)."""
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    pytest.fail(f"no JSON in driver output:\n{text}")


def run_driver(driver, cluster, command, *args, timeout=60, expect_rc=0):
    """Runs a C++ test driver binary (tests/cpp) against `cluster`; answers its JSON line."""
    proc = subprocess.run([driver, command, "--address", cluster.address, *map(str, args)], env=cluster.env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == expect_rc, (
        f"{os.path.basename(driver)} {command} exited {proc.returncode}\nstdout: {proc.stdout}\n"
        f"stderr: {proc.stderr[-4000:]}")
    return last_json(proc.stdout)


PYTHON_DIR = os.path.join(REPO, "build", "python")  # where the build puts `import shoal`


@pytest.fixture(scope="module")
def three_nodes():
    """A three-node cluster (start_three_nodes, 2 GPUs on node A) shared by a module's Python
    tests, which run their drivers in the pytest process (see `driver`)."""
    root = tempfile.mkdtemp(prefix="shoal-py-", dir="/tmp")
    c = Cluster(root)
    try:
        start_three_nodes(c, gpus_a=2, gpus_b=1)
        yield c
    finally:
        c.teardown()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def driver(three_nodes):
    """This pytest process as a Shoal driver of the module's three-node cluster."""
    if PYTHON_DIR not in sys.path:
        sys.path.insert(0, PYTHON_DIR)
    import shoal
    # A driver of a cluster started elsewhere learns its token from the environment.
    os.environ["SHOAL_AUTH_TOKEN"] = three_nodes.auth_token()
    shoal.init(address=three_nodes.address)
    yield three_nodes
    shoal.shutdown()
