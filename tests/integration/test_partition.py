"""A network partition, made with a network namespace joined to this machine by a veth pair (no
traffic leaves the machine): the node cut off is declared dead, the task it was running is
retried on another node, and when the link comes back the cut-off raylet exits instead of
rejoining half-alive. Needs root (as CI runs) for `ip netns`; skipped otherwise."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import PYTHON_DIR, SHOAL, ip, process_alive, wait_until


@pytest.fixture
def netns():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    tag = os.getpid() % 200 + 20
    ns, host_if, ns_if = f"shoal-p{os.getpid()}", f"shp{os.getpid()}h", f"shp{os.getpid()}n"
    host_ip, ns_ip = f"10.213.{tag}.1", f"10.213.{tag}.2"
    if ip("netns", "add", ns, check=False).returncode != 0:
        pytest.skip("cannot create a network namespace here")
    try:
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        ip("link", "set", ns_if, "netns", ns)
        ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("-n", ns, "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        ip("-n", ns, "link", "set", ns_if, "up")
        ip("-n", ns, "link", "set", "lo", "up")
        yield {"ns": ns, "host_if": host_if, "host_ip": host_ip, "ns_ip": ns_ip}
    finally:
        ip("link", "del", host_if, check=False)
        ip("netns", "del", ns, check=False)


DRIVER = textwrap.dedent("""
    import json, os, sys
    import shoal as ray

    ray.init(address=os.environ["SHOAL_TEST_ADDRESS"])

    @ray.remote(resources={"P": 1}, max_retries=3)
    def work(log):
        with open(log, "a") as f:
            f.write(os.environ.get("SHOAL_NODE_ID", "?") + "\\n")
        attempts = len(open(log).read().split())
        if attempts == 1:
            import time
            time.sleep(600)  # the first attempt is cut off by the partition here
        return attempts

    ref = work.remote(os.environ["SHOAL_TEST_LOG"])
    print(json.dumps({"attempts": ray.get(ref, timeout=300)}), flush=True)
""")


def in_namespace(pid, ns):
    """True if process `pid` lives in the named network namespace."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{ns}").st_ino
    except OSError:
        return False


def test_partitioned_node_is_declared_dead_its_task_retried_and_it_does_not_rejoin(cluster, netns, tmp_path):
    cluster.host = netns["host_ip"]
    cluster.start_head("--num-cpus", 1, "--node-ip-address", netns["host_ip"])
    # The node that will be cut off, inside the namespace.
    join = ["start", "--address", cluster.address, "--num-cpus", 1, "--num-gpus", 0, "--resources", '{"P": 1}']
    subprocess.run(["ip", "netns", "exec", netns["ns"], SHOAL, *map(str, join), "--node-ip-address", netns["ns_ip"]],
                   env=cluster.env, check=True, capture_output=True, text=True, timeout=60)
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 30, what="the namespaced node to join")
    cut_off = [p for p in cluster.recorded_pids()["raylet"] if in_namespace(p, netns["ns"])]
    assert len(cut_off) == 1

    log = tmp_path / "attempts.txt"
    env = dict(cluster.env, PYTHONPATH=PYTHON_DIR, SHOAL_TEST_ADDRESS=cluster.address, SHOAL_TEST_LOG=str(log),
               SHOAL_AUTH_TOKEN=cluster.auth_token())
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    cluster.extra_pids.append(driver.pid)
    wait_until(lambda: log.exists() and len(log.read_text().split()) == 1, 60,
               what="the task to start on the namespaced node")
    # Another node that can run the task, then the cut.
    cluster.shoal(*join, "--node-ip-address", netns["host_ip"])
    wait_until(lambda: len(cluster.alive_nodes()) == 3, 30, what="the second node to join")
    ip("link", "set", netns["host_if"], "down")

    def cut_off_dead():
        nodes = json.loads(cluster.shoal("status", "--address", cluster.address, "--json").stdout)["nodes"]
        return [n for n in nodes if n["address"].startswith(netns["ns_ip"]) and n["state"] == "DEAD"]
    dead = wait_until(cut_off_dead, 60, what="the cut-off node to be declared dead")
    assert dead
    out, err = driver.communicate(timeout=180)
    assert driver.returncode == 0, err[-3000:]
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert results == [{"attempts": 2}], out
    attempts = log.read_text().split()
    assert len(attempts) == 2 and attempts[0] != attempts[1], attempts  # retried on another node

    # The link comes back: the node the GCS declared dead does not rejoin; its raylet exits.
    ip("link", "set", netns["host_if"], "up")
    wait_until(lambda: not process_alive(cut_off[0]), 60, what="the cut-off raylet to exit")
    assert len(cluster.alive_nodes()) == 2
    # Its worker (still sleeping in the first attempt) ends too, once its raylet is gone.
    def namespaced_processes():
        return [int(p) for p in os.listdir("/proc") if p.isdigit() and in_namespace(int(p), netns["ns"])]
    wait_until(lambda: not namespaced_processes(), 60, what="every process in the namespace to end")
