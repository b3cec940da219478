"""Shoal's scale envelope, one scenario per run, each printing its figures (and checking its
results: nothing may be lost) as a JSON line.

    PYTHONPATH=build/python python3 bench/scale/scale.py SCENARIO [--count N] [--json FILE]

  tasks       N no-op tasks queued at once on one node (default 1,000,000): time to finish, tasks/s,
              peak RSS of the driver, the raylet and the GCS
  many-args   one task with N object arguments (default 10,000)
  get-many    one get of N objects (default 10,000)
  actors      N actors alive at once, 0.001 CPU each (default 1,000; each is a worker
              process, so the machine's memory bounds it: the figure says where it stopped);
              then what they cost while idle (CPU and switches per worker, PSS, machine busy)
  raylets     N raylets on this machine (default 50, 1 CPU each) running 10,000 tasks that spill
              back from the head's node; --tasks sets the task count
  gcs-memory  the GCS's memory per node (its growth while N extra raylets join, default 10), per
              live actor (--actors) and per finished task (--tasks)

Each scenario starts its own cluster under a temporary root (bench/bench_cluster.py). Not a test:
tests/integration/test_scale_scripts.py runs each with tiny counts and checks only the results.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench_cluster import SHOAL, local_cluster  # noqa: E402


def proc_kib(path, field):
    """The value (KiB) of `field` ("VmRSS:", "Pss:", ...) in a /proc file, or None."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_peak_mib(pid):
    kib = proc_kib(f"/proc/{pid}/status", "VmHWM:")
    return None if kib is None else round(kib / 1024, 1)


def rss_mib(pid):
    kib = proc_kib(f"/proc/{pid}/status", "VmRSS:")
    return None if kib is None else kib / 1024


def daemon_pids(name):
    """Pids of the daemons `shoal start` recorded under this run's root."""
    root = os.environ["SHOAL_TMPDIR"]
    pids = []
    for path in glob.glob(os.path.join(root, "session_*", "processes", f"{name}.json")):
        with open(path) as f:
            pids.append(json.load(f)["pid"])
    return sorted(set(pids))


def scenario_tasks(shoal, count):
    @shoal.remote(num_cpus=1)
    def noop(i):
        return i

    start = time.perf_counter()
    refs = [noop.remote(i) for i in range(count)]
    submitted = time.perf_counter() - start
    total = 0
    for chunk in range(0, count, 10000):
        total += sum(shoal.get(refs[chunk:chunk + 10000]))
        refs[chunk:chunk + 10000] = [None] * len(refs[chunk:chunk + 10000])
    seconds = time.perf_counter() - start
    assert total == count * (count - 1) // 2, "a result was lost or wrong"
    return {"tasks": count, "submit_s": round(submitted, 2), "total_s": round(seconds, 2),
            "tasks_per_s": round(count / seconds, 1), "peak_rss_mib": {
                "driver": rss_peak_mib(os.getpid()), "raylet": [rss_peak_mib(p) for p in daemon_pids("raylet")],
                "gcs": [rss_peak_mib(p) for p in daemon_pids("gcs")]}}


def scenario_many_args(shoal, count):
    @shoal.remote
    def total(*values):
        return sum(values)

    refs = [shoal.put(i) for i in range(count)]
    start = time.perf_counter()
    result = shoal.get(total.remote(*refs), timeout=600)
    seconds = time.perf_counter() - start
    assert result == count * (count - 1) // 2
    return {"arguments": count, "seconds": round(seconds, 3)}


def scenario_get_many(shoal, count):
    refs = [shoal.put(i) for i in range(count)]
    start = time.perf_counter()
    values = shoal.get(refs, timeout=600)
    seconds = time.perf_counter() - start
    assert values == list(range(count))
    return {"objects": count, "seconds": round(seconds, 3), "per_s": round(count / seconds, 1)}


def scenario_actors(shoal, count):
    # 0.001 CPU each: 2,000 fit the head's 2 CPUs (at 0.01, the 201st waited for a CPU share).
    @shoal.remote(num_cpus=0.001)
    class Small:
        def pid(self):
            return os.getpid()

    start = time.perf_counter()
    actors, alive, problem = [], 0, ""
    for i in range(count):
        actors.append(Small.remote())
    for a in actors:
        try:
            shoal.get(a.pid.remote(), timeout=300)
            alive += 1
        except Exception as e:  # noqa: BLE001 - the figure says where it stopped and why
            problem = f"{type(e).__name__}: {str(e)[:300]}"
            break
    seconds = time.perf_counter() - start
    if problem:
        return {"actors": count, "alive": alive, "seconds": round(seconds, 2), "stopped_by": problem}
    assert alive == count
    pids = shoal.get([a.pid.remote() for a in actors], timeout=300)
    assert len(set(pids)) == count  # one worker process each
    time.sleep(3)  # let the workers' loops settle into their idle ticks
    idle = idle_figures(pids, seconds=10)
    # Still all there, and answering, after the idle window.
    assert shoal.get([a.pid.remote() for a in actors], timeout=300) == pids
    return {"actors": count, "alive": alive, "seconds": round(seconds, 2), "stopped_by": "", **idle}


def cpu_ticks(pid):
    """utime + stime of `pid` (clock ticks), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return None


def switches(pid):
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/status"):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def pss_mib(pid):
    kib = proc_kib(f"/proc/{pid}/smaps_rollup", "Pss:")
    return None if kib is None else kib / 1024


def machine_busy():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def idle_figures(pids, seconds):
    """What `pids` (idle actors' workers) cost over `seconds`: CPU per worker (percent of one
    CPU), context switches per worker per second, the machine's busy share, PSS per worker."""
    hz = os.sysconf("SC_CLK_TCK")
    before = {pid: (cpu_ticks(pid), switches(pid)) for pid in pids}
    busy0, total0 = machine_busy()
    start = time.perf_counter()
    time.sleep(seconds)
    elapsed = time.perf_counter() - start
    busy1, total1 = machine_busy()
    ticks, switched = 0, 0
    for pid in pids:
        cpu = cpu_ticks(pid)
        assert cpu is not None, f"worker {pid} ended while idle"
        ticks += cpu - before[pid][0]
        switched += switches(pid) - before[pid][1]
    sample = [m for m in (pss_mib(pid) for pid in pids[:50]) if m is not None]
    return {
        "idle_seconds": round(elapsed, 1),
        "idle_cpu_percent_per_worker": round(100 * ticks / hz / elapsed / len(pids), 4),
        "idle_switches_per_worker_per_s": round(switched / elapsed / len(pids), 1),
        "idle_machine_busy_percent": round(100 * (busy1 - busy0) / max(1, total1 - total0), 1),
        "pss_mib_per_worker": round(sum(sample) / len(sample), 1) if sample else None,
    }


def scenario_raylets(shoal, count, tasks):
    @shoal.remote(num_cpus=1)
    def where(i):
        return i, os.environ.get("SHOAL_NODE_ID", "")

    start = time.perf_counter()
    results = shoal.get([where.remote(i) for i in range(tasks)], timeout=1800)
    seconds = time.perf_counter() - start
    assert sorted(i for i, _ in results) == list(range(tasks))
    nodes = {n for _, n in results}
    return {"raylets": count + 1, "tasks": tasks, "seconds": round(seconds, 2), "nodes_used": len(nodes)}


def scenario_gcs_memory(shoal, count, n_actors, n_tasks, start_node):
    gcs = daemon_pids("gcs")[0]
    time.sleep(2)  # the head's first reports settle
    start = rss_mib(gcs)
    for _ in range(count):
        start_node("--num-cpus", "1", "--num-gpus", "0", "--object-store-memory", str(64 << 20))
    deadline = time.monotonic() + 120
    while len([n for n in shoal.nodes() if n["Alive"]]) < count + 1:
        assert time.monotonic() < deadline, "the extra raylets did not all join"
        time.sleep(0.2)
    time.sleep(3)  # a few rounds of their resource reports
    base = rss_mib(gcs)
    figures = {"gcs_rss_start_mib": round(start, 1), "gcs_rss_with_nodes_mib": round(base, 1),
               "per_node_kib": round((base - start) * 1024 / count, 1)}

    @shoal.remote(num_cpus=0.01)
    class Idle:
        def ok(self):
            return 1

    actors = [Idle.remote() for _ in range(n_actors)]
    assert sum(shoal.get([a.ok.remote() for a in actors], timeout=600)) == n_actors
    after_actors = rss_mib(gcs)
    figures["per_actor_kib"] = round((after_actors - base) * 1024 / n_actors, 2)

    @shoal.remote(num_cpus=1)
    def noop():
        return 1

    assert sum(shoal.get([noop.remote() for _ in range(n_tasks)], timeout=1800)) == n_tasks
    time.sleep(2)  # task events reach the GCS in batches
    after_tasks = rss_mib(gcs)
    figures["per_finished_task_bytes"] = round((after_tasks - after_actors) * 1024 * 1024 / n_tasks, 1)
    figures.update({"extra_raylets": count, "actors": n_actors, "tasks": n_tasks, "gcs_rss_end_mib": round(after_tasks, 1)})
    return figures


DEFAULTS = {"tasks": 1_000_000, "many-args": 10_000, "get-many": 10_000, "actors": 1_000, "raylets": 50,
            "gcs-memory": 10}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=sorted(DEFAULTS))
    parser.add_argument("--count", type=int)
    parser.add_argument("--tasks", type=int, default=10_000, help="raylets, gcs-memory: tasks to run")
    parser.add_argument("--actors", type=int, default=50, help="gcs-memory: actors to keep alive")
    parser.add_argument("--json")
    args = parser.parse_args()
    count = args.count if args.count is not None else DEFAULTS[args.scenario]
    if count < 1 or args.tasks < 1 or args.actors < 1:
        parser.error("--count, --tasks and --actors must be positive")
    workers = ()
    head_cpus = 2
    if args.scenario == "raylets":
        head_cpus = 0  # every task spills back to the other raylets
        workers = [("--num-cpus", "1", "--num-gpus", "0", "--object-store-memory", str(64 << 20))] * count
    with local_cluster(f"shoal-scale-{args.scenario}-", head_cpus=head_cpus, workers=workers) as (address, env):
        import shoal
        shoal.init(address=address)
        try:
            if args.scenario == "tasks":
                figures = scenario_tasks(shoal, count)
            elif args.scenario == "many-args":
                figures = scenario_many_args(shoal, count)
            elif args.scenario == "get-many":
                figures = scenario_get_many(shoal, count)
            elif args.scenario == "actors":
                figures = scenario_actors(shoal, count)
            elif args.scenario == "raylets":
                figures = scenario_raylets(shoal, count, args.tasks)
            else:
                def start_node(*node_args):
                    subprocess.run([SHOAL, "start", "--address", address, *node_args], env=env, check=True,
                                   capture_output=True)

                figures = scenario_gcs_memory(shoal, count, args.actors, args.tasks, start_node)
        finally:
            shoal.shutdown()
    doc = {"scenario": args.scenario, "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), **figures}
    print(json.dumps(doc), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
