"""The raylet's memory monitor end to end: a Python task that allocates and holds memory is
killed when the node's memory use passes the threshold, retried while it may be, and past its
retries fails with OutOfMemoryError naming the node, the usage and the threshold; the raylet
lives on and the task's CPU is free again. Retries after memory kills come out of the owner's
own budget (SHOAL_TASK_OOM_RETRIES, Ray's task_oom_retries), not out of max_retries; the C++ API
raises shoal::OutOfMemoryError.

Never the machine's real limit: the head's raylet gets a threshold just above the memory in use
when the test starts (read as the raylet reads it: /proc/meminfo's MemTotal - MemAvailable, or
the binding cgroup's usage and limit), and the task allocates in steps until it is killed. Other
processes on the machine may move the memory in use: the assertions hold whichever attempt the
monitor kills (a task that could not be retried fails with OutOfMemoryError either way).
"""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

import conftest
from conftest import PYTHON_DIR, process_alive, wait_until

sys.path.insert(0, PYTHON_DIR)

import cloudpickle  # noqa: E402

import shoal  # noqa: E402

# Functions defined here travel by value: workers do not import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

MiB = 1 << 20
MARGIN = 1024 * MiB  # the threshold sits this far above the memory in use at the start (others may use some)
STEP = 32 * MiB


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _int(text):
    try:
        return int(text.strip())
    except (AttributeError, ValueError):
        return None


def _stat(text, key):
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            return int(parts[1])
    return 0


def node_memory():
    """(used, total) bytes as the raylet's SystemMemoryReader reads them."""
    info = {}
    for line in _read("/proc/meminfo").splitlines():
        key, rest = line.split(":", 1)
        info[key] = int(rest.split()[0]) * 1024
    total = info["MemTotal"]
    best = (total - info["MemAvailable"], total)
    levels = []
    self_cgroup = _read("/proc/self/cgroup") or ""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        path = next((line.split(":", 2)[2] for line in self_cgroup.splitlines() if line.startswith("0::")), "/")
        mount, files = "/sys/fs/cgroup", ("memory.max", "memory.current", "inactive_file")
    else:
        path = next((line.split(":", 2)[2] for line in self_cgroup.splitlines()
                     if "memory" in line.split(":")[1].split(",")), None)
        mount, files = "/sys/fs/cgroup/memory", ("memory.limit_in_bytes", "memory.usage_in_bytes",
                                                 "total_inactive_file")
    if path is not None:
        parts = [p for p in path.split("/") if p]
        for depth in range(len(parts), -1, -1):
            d = os.path.join(mount, *parts[:depth])
            limit, usage = _int(_read(os.path.join(d, files[0]))), _int(_read(os.path.join(d, files[1])))
            if limit and usage is not None and limit < total:
                levels.append((usage - _stat(_read(os.path.join(d, "memory.stat")), files[2]), limit))
    for used, limit in levels:
        if used / limit > best[0] / best[1]:
            best = (used, limit)
    return max(best[0], 0), best[1]


def hog(cap, marker=None):
    """Allocates STEP at a time and holds it, up to `cap` bytes; with `marker`, only on the
    first attempt (each attempt appends its pid there). Answers what happened if not killed."""
    if marker is not None:
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\n")
        with open(marker) as f:
            attempt = len(f.read().split())
        if attempt > 1:
            return f"attempt {attempt}"
    held = []
    while len(held) * STEP < cap:
        held.append(b"x" * STEP)  # written, so resident
        time.sleep(0.05)
    time.sleep(10)  # the monitor reads every 100 ms: it has had every chance
    return f"not killed holding {len(held) * STEP // MiB} MiB"


def hog_always(cap, marker):
    """hog on every attempt, each appending its pid to `marker`."""
    with open(marker, "a") as f:
        f.write(f"{os.getpid()}\n")
    return hog(cap)


OOM_RETRIES = 2  # the driver's SHOAL_TASK_OOM_RETRIES in oom_cluster


def test_monitor_flags_are_checked_and_zero_refresh_disables_it(cluster):
    # First in the file: it runs its own driver before the module's cluster has one.
    for flag, value, error in (("--memory-usage-threshold", "1.5", "must be above 0 and at most 1"),
                               ("--memory-usage-threshold", "0", "must be above 0 and at most 1"),
                               ("--memory-monitor-refresh-ms", "-5", "must be >= 0")):
        proc = cluster.shoal("start", "--head", "--port", conftest.free_port(), flag, value, check=False)
        assert proc.returncode == 2
        assert f"{flag} {error}" in proc.stderr, proc.stderr
        assert cluster.all_pids() == []
    # The raylet checks them too (it may be started without the CLI).
    for flag, value, error in (("--memory-usage-threshold", "nan", "must be above 0 and at most 1"),
                               ("--memory-monitor-refresh-ms", "-1", "must not be negative")):
        proc = subprocess.run([os.path.join(conftest.BIN, "shoal-raylet"), "--gcs-address", "127.0.0.1:1",
                               "--disable-auth", flag, value], env=cluster.env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 2
        assert f"{flag} {error}" in proc.stdout + proc.stderr, proc.stdout + proc.stderr

    # A threshold far below the memory in use, but the monitor is off: tasks run.
    cluster.start_head("--num-cpus", 1, "--memory-usage-threshold", 0.001, "--memory-monitor-refresh-ms", 0)
    shoal.init(address=cluster.address)
    try:
        assert shoal.get([shoal.remote(lambda i: i * 2).remote(i) for i in range(3)], timeout=60) == [0, 2, 4]
    finally:
        shoal.shutdown()

    # The owner's OOM retry budget is checked when a driver starts.
    for name, value in (("SHOAL_TASK_OOM_RETRIES", "-2"), ("SHOAL_TASK_OOM_RETRIES", "many"),
                        ("SHOAL_TASK_OOM_RETRY_DELAY_BASE_MS", "-1")):
        proc = subprocess.run([sys.executable, "-c", f"import shoal; shoal.init(address={cluster.address!r})"],
                              env={**cluster.env, "PYTHONPATH": PYTHON_DIR, name: value}, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode != 0
        assert f"{name} must be an integer" in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def oom_cluster():
    """A one-CPU head whose raylet kills workers MARGIN above the memory in use now."""
    used, total = node_memory()
    available = total - used
    # Room to go on allocating when others free memory meanwhile (the threshold does not move).
    cap = min(MARGIN + 4096 * MiB, available - 1024 * MiB)
    if cap < MARGIN + 256 * MiB:
        pytest.skip(f"too little free memory for the test ({available // MiB} MiB)")
    threshold = math.ceil((used + MARGIN) / total * 1000) / 1000
    root = tempfile.mkdtemp(prefix="shoal-oom-", dir="/tmp")
    c = conftest.Cluster(root)
    saved = {k: os.environ.get(k) for k in ("SHOAL_TASK_OOM_RETRIES", "SHOAL_TASK_OOM_RETRY_DELAY_BASE_MS")}
    try:
        c.start_head("--num-cpus", 1, "--memory-usage-threshold", threshold, "--memory-monitor-refresh-ms", 100)
        # This driver's budget of retries after memory kills, and a short first delay.
        os.environ.update(SHOAL_TASK_OOM_RETRIES=str(OOM_RETRIES), SHOAL_TASK_OOM_RETRY_DELAY_BASE_MS="200")
        shoal.init(address=c.address)
        try:
            yield c, threshold, cap
        finally:
            shoal.shutdown()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        c.teardown()
        shutil.rmtree(root, ignore_errors=True)


def head_node(c):
    nodes = c.alive_nodes()
    assert len(nodes) == 1, nodes
    return nodes[0]


def everything_free(c):
    node = head_node(c)
    return all(abs(node["resources_available"].get(k, 0) - v) < 1e-9 for k, v in node["resources_total"].items())


def test_task_past_its_retries_fails_with_out_of_memory_error(oom_cluster):
    c, threshold, cap = oom_cluster
    raylet_pid = c.recorded_pids()["raylet"][0]
    node_id = head_node(c)["node_id"]

    ref = shoal.remote(max_retries=0)(hog).remote(cap)
    try:
        pytest.fail(f"the task was not killed: {shoal.get(ref, timeout=120)}")
    except shoal.exceptions.OutOfMemoryError as e:
        error = e
    message = str(error)
    assert "hog" in message and "after 1 attempt(s)" in message, message
    assert f"memory monitor of node {node_id}" in message, message
    # "memory use 3.49 GiB of 23.54 GiB (0.148, from /proc/meminfo) was above the threshold 0.146 (3.44 GiB"
    usage = re.search(r"memory use [\d.]+ [KMG]?i?B of [\d.]+ [KMG]?i?B \((\d\.\d{3}), from [^)]+\) was above "
                      r"the threshold (\d\.\d{3}) \([\d.]+ [KMG]?i?B", message)
    assert usage, message
    assert float(usage.group(2)) == threshold
    assert float(usage.group(1)) >= threshold
    assert isinstance(error, shoal.exceptions.ShoalError)

    # The raylet lives on, and the task's CPU is free again.
    assert process_alive(raylet_pid)
    wait_until(lambda: everything_free(c), 30, what="the killed task's CPU to be free again")
    assert head_node(c)["state"] == "ALIVE"
    assert shoal.get(shoal.remote(lambda: 7).remote(), timeout=60) == 7


def test_retriable_task_killed_for_memory_succeeds_on_retry(oom_cluster, tmp_path):
    c, threshold, cap = oom_cluster
    marker = str(tmp_path / "attempts")

    result = shoal.get(shoal.remote(max_retries=10)(hog).remote(cap, marker), timeout=180)
    with open(marker) as f:
        pids = f.read().split()
    # The first attempt was killed (while it allocated, or sooner if others' memory pushed the
    # node over); a later one, in a new worker, allocated nothing and answered.
    assert result == f"attempt {len(pids)}", result
    assert len(pids) >= 2
    assert not process_alive(int(pids[0]))
    wait_until(lambda: everything_free(c), 30, what="every resource to be free again")


def test_memory_kills_spend_the_oom_budget_not_max_retries(oom_cluster, tmp_path):
    c, threshold, cap = oom_cluster
    marker = str(tmp_path / "attempts")
    # max_retries=1 alone would allow 2 attempts; memory kills have their own budget of
    # OOM_RETRIES retries, so the task runs 1 + OOM_RETRIES times before it fails.
    ref = shoal.remote(max_retries=1)(hog_always).remote(cap, marker)
    try:
        pytest.fail(f"the task was not killed: {shoal.get(ref, timeout=240)}")
    except shoal.exceptions.OutOfMemoryError as e:
        message = str(e)
    with open(marker) as f:
        pids = [int(p) for p in f.read().split()]
    assert len(pids) == 1 + OOM_RETRIES, (pids, message)
    assert f"after {1 + OOM_RETRIES} attempt(s)" in message, message
    assert f"{OOM_RETRIES} retries after memory kills, task_oom_retries={OOM_RETRIES}" in message, message
    assert not any(process_alive(p) for p in pids)
    wait_until(lambda: everything_free(c), 30, what="every resource to be free again")


def test_cpp_task_killed_for_memory_raises_out_of_memory_error(oom_cluster):
    c, threshold, cap = oom_cluster
    node_id = head_node(c)["node_id"]
    proc = subprocess.run([os.path.join(conftest.BIN, "shoal_task_driver"), "oom", "--address", c.address,
                           "--size", str(cap), "--max-retries", "0"],
                          env=c.env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert out, proc.stdout + proc.stderr
    result = json.loads(out[-1])
    assert result["error_type"] == "OutOfMemoryError", result
    assert f"memory monitor of node {node_id}" in result["error"], result
    assert "OUT_OF_MEMORY" not in result["error"]  # its own class, not the generic Error
    wait_until(lambda: everything_free(c), 30, what="every resource to be free again")
