"""Chaos: work completes with exact results while worker raylets, actor workers and the GCS are
killed with kill -9; afterwards every resource is free again and no process of the cluster is
left. Bounded in count and time for CI; bench/chaos.sh runs a longer version (the SHOAL_CHAOS_*
variables below) and records tasks per second under chaos.

Each test's driver is a Python subprocess that prints one JSON line per round and a report at
the end; the test kills and restarts processes meanwhile, by pid."""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

from shoal_harness import (PYTHON_DIR, assert_resources_back, process_alive, restart_gcs, wait_until,
                           worker_raylet_pids)

MIN_ROUNDS = int(os.environ.get("SHOAL_CHAOS_MIN_ROUNDS", "5"))  # of 100 small, 4 large, 2 nested tasks
KILLS = int(os.environ.get("SHOAL_CHAOS_KILLS", "4"))         # worker raylets killed during them
PERIOD_S = float(os.environ.get("SHOAL_CHAOS_PERIOD_S", "3"))  # between kills
REPORT = os.environ.get("SHOAL_CHAOS_REPORT")                 # bench/chaos.sh: where the figures go

TASKS = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    import shoal as ray

    ray.init(address=os.environ["SHOAL_TEST_ADDRESS"])
    MIN_ROUNDS = int(os.environ["SHOAL_CHAOS_MIN_ROUNDS"])
    STOP = os.environ["SHOAL_CHAOS_STOP"]  # rounds go on until the test creates this file
    on_workers = dict(resources={"W": 1}, max_retries=20)

    @ray.remote(**on_workers)
    def small(i):
        return i * 2

    @ray.remote(**on_workers)
    def large(seed):
        return np.full((1 << 20) // 8, seed, dtype=np.int64)  # 1 MiB: in the node's store

    @ray.remote(max_retries=20)
    def child(i):
        return i * 2

    @ray.remote(**on_workers)
    def nested(i):
        return sum(ray.get([child.remote(i + k) for k in range(3)]))

    report = {"small": 0, "large": 0, "nested": 0, "wrong": [], "errors": []}

    def check(kind, refs, expected, same):
        try:
            values = ray.get(refs, timeout=300)
        except Exception as e:  # reported, and the test fails on it
            report["errors"].append(("%s: %s: %s" % (kind, type(e).__name__, e))[:600])
            return
        for value, want in zip(values, expected):
            if same(value, want):
                report[kind] += 1
            else:
                report["wrong"].append(kind)

    start = time.time()
    r = 0
    while r < MIN_ROUNDS or not os.path.exists(STOP):
        s = [small.remote(i) for i in range(r * 100, r * 100 + 100)]
        l = [large.remote(r * 4 + k) for k in range(4)]
        n = [nested.remote(r * 2 + k) for k in range(2)]
        check("small", s, [i * 2 for i in range(r * 100, r * 100 + 100)], lambda v, w: v == w)
        check("large", l, [r * 4 + k for k in range(4)],
              lambda v, w: v.size == 131072 and int(v.min()) == w and int(v.max()) == w)
        check("nested", n, [6 * (r * 2 + k) + 6 for k in range(2)], lambda v, w: v == w)
        print(json.dumps({"round": r}), flush=True)
        r += 1
    report["rounds"] = r
    report["seconds"] = time.time() - start
    print(json.dumps(report), flush=True)
""")

ACTOR = textwrap.dedent("""
    import json, os, sys
    import shoal as ray

    ray.init(address=os.environ["SHOAL_TEST_ADDRESS"])
    ROUNDS, CALLS = int(os.environ["SHOAL_CHAOS_ROUNDS"]), int(os.environ["SHOAL_CHAOS_CALLS"])

    @ray.remote(max_restarts=-1, max_task_retries=-1, resources={"W": 1})
    class Counter:
        def __init__(self):
            self.n = 0

        def incr(self):
            self.n += 1
            return self.n

        def pid(self):
            return os.getpid()

    c = Counter.remote()
    values, errors = [], []
    for r in range(ROUNDS):
        # The test kills the worker named here, then lets the round's calls go while the actor
        # restarts.
        print(json.dumps({"pid": ray.get(c.pid.remote(), timeout=120)}), flush=True)
        sys.stdin.readline()
        for i in range(CALLS):
            try:
                values.append(ray.get(c.incr.remote(), timeout=120))
            except Exception as e:  # reported, and the test fails on it
                errors.append(repr(e)[:600])
    resets = sum(1 for a, b in zip(values, values[1:]) if b <= a)
    print(json.dumps({"calls": len(values), "errors": errors, "resets": resets}), flush=True)
""")


def cluster_processes(cluster):
    """Live processes of the cluster: the recorded daemons and every process whose environment
    names a session directory under the cluster's root (its workers)."""
    pids = {p for p in cluster.all_pids() if process_alive(p)}
    needle = ("SHOAL_SESSION_DIR=" + cluster.root).encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle in f.read() and process_alive(int(name)):
                    pids.add(int(name))
        except OSError:
            continue
    return sorted(pids)


class Driver:
    """A driver subprocess running `code`; its JSON lines collect in `lines` as they come
    (forwarded worker output is skipped)."""

    def __init__(self, cluster, code, **env):
        full = dict(cluster.env, PYTHONPATH=PYTHON_DIR, SHOAL_TEST_ADDRESS=cluster.address,
                    SHOAL_AUTH_TOKEN=cluster.auth_token(), **{k: str(v) for k, v in env.items()})
        self.proc = subprocess.Popen([sys.executable, "-c", code], env=full, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        cluster.extra_pids.append(self.proc.pid)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                sys.stderr.write("driver: " + line)

    def running(self):
        return self.proc.poll() is None

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout):
        """Waits for the driver; answers its last JSON line (its report)."""
        self.proc.wait(timeout=timeout)
        self.reader.join(timeout=30)
        assert self.proc.returncode == 0, self.proc.stderr.read()[-4000:]
        return self.lines[-1]


def start_cluster(cluster, workers, *head_args):
    """A head that runs 1 CPU and `workers` worker nodes with 2 CPUs and W: 2 each."""
    cluster.start_head("--num-cpus", 1, "--num-gpus", 0, *head_args)
    for _ in range(workers):
        cluster.start_worker("--num-cpus", 2, "--num-gpus", 0, "--resources", '{"W": 2}')
    wait_until(lambda: len(cluster.alive_nodes()) == workers + 1, 30, what=f"{workers + 1} alive nodes")


def assert_nothing_left(cluster, started_here=()):
    """After `shoal stop` (and ending what the test started itself, e.g. a restarted GCS), no
    daemon and no worker of the cluster is alive (workers of killed raylets end on their own
    once they miss their raylet's health checks)."""
    cluster.shoal("stop")
    for proc in started_here:
        proc.kill()
        proc.wait(timeout=30)
    wait_until(lambda: not cluster_processes(cluster), 60, what="every process of the cluster to end")


def test_tasks_are_exact_while_worker_raylets_are_killed(cluster):
    start_cluster(cluster, 3)
    stop = os.path.join(cluster.root, "chaos-stop")
    driver = Driver(cluster, TASKS, SHOAL_CHAOS_MIN_ROUNDS=MIN_ROUNDS, SHOAL_CHAOS_STOP=stop)

    rng = random.Random(12)
    kills = 0
    while kills < KILLS and driver.running():
        time.sleep(PERIOD_S)
        alive = [p for p in worker_raylet_pids(cluster) if process_alive(p)]
        if not driver.running() or not alive:
            break
        os.kill(rng.choice(alive), signal.SIGKILL)
        kills += 1
        cluster.start_worker("--num-cpus", 2, "--num-gpus", 0, "--resources", '{"W": 2}')
    open(stop, "w").close()

    report = driver.finish(timeout=600)
    assert kills == KILLS, (kills, report)
    assert report["errors"] == [] and report["wrong"] == [], report
    rounds = report["rounds"]
    assert (report["small"], report["large"], report["nested"]) == (100 * rounds, 4 * rounds, 2 * rounds)
    if REPORT:
        tasks = report["small"] + report["large"] + 3 * report["nested"]
        with open(REPORT, "a") as f:
            f.write(json.dumps({"test": "tasks", "tasks": tasks, "kills": kills, "seconds": report["seconds"],
                                "tasks_per_s": tasks / report["seconds"]}) + "\n")
    assert_resources_back(cluster)
    assert_nothing_left(cluster)


def test_restartable_actor_answers_every_call_while_its_worker_is_killed(cluster):
    start_cluster(cluster, 1)
    rounds = 4
    kills = rounds - 1
    driver = Driver(cluster, ACTOR, SHOAL_CHAOS_ROUNDS=rounds, SHOAL_CHAOS_CALLS=100)
    killed = []
    for r in range(rounds):
        pids = lambda: [line["pid"] for line in driver.lines if "pid" in line]  # noqa: E731
        wait_until(lambda: len(pids()) > r or not driver.running(), 120, what=f"round {r}'s actor pid")
        pid = pids()[r]
        if r > 0:
            assert pid not in killed, (pid, killed)  # the actor came back in a new process
        if r > 0:  # after a round of calls, so that the restart shows as the count starting again
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        driver.send("go")
    report = driver.finish(timeout=300)
    assert report["errors"] == [] and report["calls"] == rounds * 100, report
    # Each kill restarted the actor with fresh state: its count started again.
    assert report["resets"] == kills, (report, killed)
    assert_resources_back(cluster)
    assert_nothing_left(cluster)


def test_tasks_are_exact_while_the_gcs_is_killed_and_restarted(cluster, redis_server):
    start_cluster(cluster, 2, "--redis-address", f"127.0.0.1:{redis_server.port}")
    stop = os.path.join(cluster.root, "chaos-stop")
    driver = Driver(cluster, TASKS, SHOAL_CHAOS_MIN_ROUNDS=MIN_ROUNDS, SHOAL_CHAOS_STOP=stop)
    wait_until(lambda: len(driver.lines) >= 2 or not driver.running(), 120, what="two rounds before the GCS dies")
    gcs = cluster.recorded_pids()["gcs"][0]
    os.kill(gcs, signal.SIGKILL)
    wait_until(lambda: not process_alive(gcs), 10, what="the GCS to die")
    time.sleep(2)  # work goes on without a GCS for a while
    gcs_again = restart_gcs(cluster, "--redis-address", f"127.0.0.1:{redis_server.port}")
    wait_until(lambda: len(cluster.alive_nodes()) == 3, 60, what="the nodes alive again under the new GCS")
    done = len(driver.lines)
    wait_until(lambda: len(driver.lines) >= done + 2 or not driver.running(), 120,
               what="two more rounds under the new GCS")
    open(stop, "w").close()
    report = driver.finish(timeout=600)
    assert report["errors"] == [] and report["wrong"] == [], report
    rounds = report["rounds"]
    assert (report["small"], report["large"], report["nested"]) == (100 * rounds, 4 * rounds, 2 * rounds)
    assert_resources_back(cluster)
    assert_nothing_left(cluster, [gcs_again])


HOLD_ACTORS = textwrap.dedent("""
    import json, os, sys
    import shoal
    shoal.init(address=os.environ["SHOAL_TEST_ADDRESS"])

    @shoal.remote(num_cpus=0, resources={"W": 0.5})
    class Held:
        def where(self):
            return os.getpid(), os.getppid()

    actors = [Held.remote() for _ in range(2)]
    print(json.dumps({"workers": shoal.get([a.where.remote() for a in actors], timeout=120)}), flush=True)
    sys.stdin.readline()  # until the test is done
    print(json.dumps({"done": True}), flush=True)
""")


def test_workers_of_a_raylet_declared_dead_end_cleanly(cluster):
    """A raylet frozen (SIGSTOP) until the GCS declares its node dead: its workers see it stop
    answering, end with an exit code and the reason in their log, and nothing is left. (Their
    shutdown used to crash: handlers holding Python callables were dropped without the GIL.)"""
    start_cluster(cluster, 1)
    driver = Driver(cluster, HOLD_ACTORS)
    wait_until(lambda: driver.lines or not driver.running(), 120, what="the actors to start")
    assert driver.lines, driver.proc.stderr.read()[-3000:]
    workers = driver.lines[0]["workers"]
    raylet = workers[0][1]  # the workers' parent: the worker node's raylet
    assert {parent for _, parent in workers} == {raylet}
    os.kill(raylet, signal.SIGSTOP)
    try:
        wait_until(lambda: len(cluster.alive_nodes()) == 1, 90, what="the frozen node to be declared dead")
        wait_until(lambda: not any(process_alive(pid) for pid, _ in workers), 60,
                   what="the frozen raylet's workers to end")
    finally:
        os.kill(raylet, signal.SIGCONT)
    driver.send("done")
    driver.finish(timeout=60)
    logs = []
    for session in os.listdir(cluster.root):
        log_dir = os.path.join(cluster.root, session, "logs")
        if session.startswith("session_") and os.path.isdir(log_dir):
            for name in os.listdir(log_dir):
                if name.startswith("worker-") and name.endswith(".err"):
                    with open(os.path.join(log_dir, name), errors="replace") as f:
                        logs.append(f.read())
    assert not any("Fatal Python error" in text or "Segmentation fault" in text for text in logs)
    assert sum("did not answer 5 health checks" in text for text in logs) >= len(workers), logs[-3:]
    assert_nothing_left(cluster)
