"""ray.cluster_utils.Cluster for the Shoal measure: a multi-node cluster on this machine,
started with Shoal's CLI (`shoal start --head` / `shoal start --address`), each Cluster under
its own SHOAL_TMPDIR. remove_node() kills the node's raylet and every process under it (by pid:
only processes this Cluster started). Node objects carry node_id / unique_id (hex)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import ray
from ray._common.test_utils import _pid_alive as _alive

SHOAL = os.environ.get("SHOAL_BIN", "/work/main/build/bin/shoal")
cluster_not_supported = False

# As the project's integration tests (and Ray's conftest, which shortens health checks through
# _system_config): node deaths are seen within seconds.
HEALTH_ARGS = ["--health-check-period-ms", "250", "--health-check-timeout-ms", "2000",
               "--health-check-failure-threshold", "4"]
IGNORED_NODE_ARGS = {"_system_config", "include_dashboard", "dashboard_port", "min_worker_port",
                     "max_worker_port", "namespace", "node_name", "dashboard_agent_listen_port",
                     "enable_object_reconstruction"}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]




def _children_map():
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    return children


def _descendants(pid):
    cmap = _children_map()
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        for c in cmap.get(p, []):
            out.append(c)
            stack.append(c)
    return out


def _kill(pid, sig):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Node:
    def __init__(self, info, head):
        self.node_id = info["node_id"]
        self.unique_id = self.node_id
        self.address = info.get("address", "127.0.0.1")
        self.node_ip_address = self.address.split(":")[0] if ":" in self.address else self.address
        self.raylet_pid = info.get("raylet_pid")
        self.session_dir = info.get("session_dir")
        self.head = head
        self.info = info

    def __repr__(self):
        return f"Node({self.node_id[:12]}, head={self.head})"

    def recorded_pids(self):
        pids = []
        if self.session_dir:
            pdir = os.path.join(self.session_dir, "processes")
            if os.path.isdir(pdir):
                for name in os.listdir(pdir):
                    try:
                        with open(os.path.join(pdir, name)) as f:
                            pids.append(int(json.load(f)["pid"]))
                    except (OSError, ValueError, KeyError):
                        pass
        if self.raylet_pid and self.raylet_pid not in pids:
            pids.append(self.raylet_pid)
        return pids


class Cluster:
    def __init__(self, initialize_head=False, connect=False, head_node_args=None,
                 shutdown_at_exit=True):
        self.root = tempfile.mkdtemp(prefix="rmc-", dir="/tmp")
        self.head_node = None
        self.worker_nodes = []
        self.removed_nodes = []
        self.port = None
        self._prev_tmpdir = None
        self._all_pids = set()
        if initialize_head:
            self.add_node(**(head_node_args or {}))
            if connect:
                self.connect()

    # -- addresses
    @property
    def address(self):
        return None if self.port is None else f"127.0.0.1:{self.port}"

    gcs_address = address

    @property
    def webui_url(self):
        return None

    def connect(self, namespace=None):
        return ray.init(address=self.address, namespace=namespace)

    # -- CLI
    def _env(self):
        env = dict(os.environ, SHOAL_TMPDIR=self.root)
        for k in ("SHOAL_ADDRESS", "RAY_ADDRESS", "SHOAL_AUTH_TOKEN", "SHOAL_AUTH_TOKEN_FILE"):
            env.pop(k, None)
        return env

    def _shoal(self, *args, timeout=120):
        proc = subprocess.run([SHOAL, *map(str, args)], env=self._env(), capture_output=True,
                              text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"shoal {' '.join(map(str, args))} exited {proc.returncode}:\n"
                               f"{proc.stdout}\n{proc.stderr}")
        return proc

    def _status_nodes(self):
        out = self._shoal("status", "--address", self.address, "--json", timeout=60).stdout
        return json.loads(out)["nodes"]

    # -- nodes
    def add_node(self, wait=True, **node_args):
        num_cpus = node_args.pop("num_cpus", 1)
        num_gpus = node_args.pop("num_gpus", 0)
        osm = node_args.pop("object_store_memory", 150 * 1024 * 1024)
        memory = node_args.pop("memory", None)
        resources = node_args.pop("resources", None)
        labels = node_args.pop("labels", None)
        for k in list(node_args):
            if k in IGNORED_NODE_ARGS:
                node_args.pop(k)
        if node_args:
            raise TypeError(f"measure Cluster.add_node: unsupported node args {sorted(node_args)}")
        args = ["--num-cpus", num_cpus if num_cpus is not None else -1,
                "--num-gpus", num_gpus if num_gpus is not None else -1]
        if osm is not None:
            args += ["--object-store-memory", int(osm)]
        if memory is not None:
            args += ["--memory", int(memory)]
        if resources:
            args += ["--resources", json.dumps(resources)]
        if labels:
            args += ["--labels", json.dumps(labels)]
        head = self.head_node is None
        if head:
            self.port = _free_port()
            self._shoal("start", "--head", "--port", self.port, "--include-dashboard=false",
                        *HEALTH_ARGS, *args)
            # Like Ray's Cluster, the head is this machine's current cluster (address="auto").
            self._prev_tmpdir = os.environ.get("SHOAL_TMPDIR")
            os.environ["SHOAL_TMPDIR"] = self.root
            before = set()
        else:
            before = {n["node_id"] for n in self._status_nodes()}
            self._shoal("start", "--address", self.address, *args)
        deadline = time.time() + 60
        info = None
        while time.time() < deadline:
            new = [n for n in self._status_nodes() if n["node_id"] not in before and n["state"] == "ALIVE"]
            if new:
                info = new[0]
                break
            time.sleep(0.2)
        if info is None:
            raise RuntimeError("measure Cluster.add_node: the new node did not register")
        node = Node(info, head)
        for pid in node.recorded_pids():
            self._all_pids.add(pid)
        if head:
            self.head_node = node
        else:
            self.worker_nodes.append(node)
        return node

    def list_all_nodes(self):
        return ([self.head_node] if self.head_node else []) + list(self.worker_nodes)

    def remove_node(self, node, allow_graceful=True):
        pids = node.recorded_pids()
        desc = []
        for p in pids:
            desc += _descendants(p)
        self._all_pids.update(pids + desc)
        if allow_graceful:
            for p in pids:
                _kill(p, signal.SIGTERM)
            deadline = time.time() + 10
            while time.time() < deadline and any(_alive(p) for p in pids):
                time.sleep(0.1)
        for p in pids + desc:
            if _alive(p):
                _kill(p, signal.SIGKILL)
        if node is self.head_node:
            self.head_node = None
        elif node in self.worker_nodes:
            self.worker_nodes.remove(node)
        self.removed_nodes.append(node)

    def wait_for_nodes(self, timeout=30):
        want = {n.node_id for n in self.list_all_nodes()}
        deadline = time.time() + timeout
        while time.time() < deadline:
            alive = {n["node_id"] for n in self._status_nodes() if n["state"] == "ALIVE"}
            if want <= alive:
                return
            time.sleep(0.2)
        raise TimeoutError("Timed out while waiting for nodes to join.")

    def shutdown(self):
        pids = set(self._all_pids)
        for n in self.list_all_nodes() + self.removed_nodes:
            pids.update(n.recorded_pids())
        for p in list(pids):
            pids.update(_descendants(p))
        if self.port is not None:
            subprocess.run([SHOAL, "stop", "--force"], env=self._env(), capture_output=True, timeout=120)
        for p in pids:
            if _alive(p):
                _kill(p, signal.SIGKILL)
        if os.environ.get("SHOAL_TMPDIR") == self.root:
            if self._prev_tmpdir is None:
                os.environ.pop("SHOAL_TMPDIR", None)
            else:
                os.environ["SHOAL_TMPDIR"] = self._prev_tmpdir
        self.head_node = None
        self.worker_nodes = []
        self.port = None
        shutil.rmtree(self.root, ignore_errors=True)
