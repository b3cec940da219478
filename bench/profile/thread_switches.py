"""Which threads switch, and how often, per call: runs one shape on a fresh local cluster
(2 CPUs) for SECONDS after a warm-up and reads every thread's context-switch counters
(/proc/PID/task/TID/status) before and after, then prints switches per call by process and
thread name (threads under 5% of a switch per call left out).

    PYTHONPATH=build/python python3 bench/profile/thread_switches.py SHAPE [SECONDS]

SHAPE: tasks_async (1,000 tasks then one get), task_sync, actor_sync, actor_async.
Compare transports with SHOAL_PUSH_STREAMS=grpc (gRPC streams) against the default."""
import collections
import glob
import sys
import time

import shoal

SHAPES = ("tasks_async", "task_sync", "actor_sync", "actor_async")


def snapshot():
    out = {}
    for path in glob.glob("/proc/[0-9]*/task/[0-9]*/status"):
        try:
            with open(path) as f:
                fields = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
            pid = path.split("/")[2]
            with open(f"/proc/{pid}/cmdline") as f:
                cmd = f.read().replace("\0", " ").split()
            switches = int(fields["voluntary_ctxt_switches"]) + int(fields["nonvoluntary_ctxt_switches"])
            out[path] = (cmd, fields["Name"].strip(), switches)
        except (OSError, KeyError, ValueError):
            pass  # a thread that ended meanwhile
    return out


def process_name(cmd):
    if any(part.endswith("thread_switches.py") for part in cmd):
        return "driver"
    if len(cmd) > 2 and cmd[0].startswith("python") and cmd[1] == "-m":
        return cmd[2]
    return cmd[0].rsplit("/", 1)[-1] if cmd else "?"


def main():
    shape = sys.argv[1] if len(sys.argv) > 1 else "tasks_async"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    if shape not in SHAPES:
        sys.exit(f"unknown shape {shape!r}: one of {', '.join(SHAPES)}")
    shoal.init(num_cpus=2)

    @shoal.remote
    def small_value():
        return b"ok"

    @shoal.remote
    class Actor:
        def small_value(self):
            return b"ok"

    actor = Actor.remote()
    runs = {
        "tasks_async": lambda: shoal.get([small_value.remote() for _ in range(1000)]),
        "task_sync": lambda: [shoal.get(small_value.remote()) for _ in range(1000)],
        "actor_sync": lambda: [shoal.get(actor.small_value.remote()) for _ in range(1000)],
        "actor_async": lambda: shoal.get([actor.small_value.remote() for _ in range(1000)]),
    }
    run = runs[shape]
    for _ in range(3):
        run()
    before, start, calls = snapshot(), time.time(), 0
    while time.time() - start < seconds:
        run()
        calls += 1000
    elapsed = time.time() - start
    after = snapshot()
    by_thread = collections.Counter()
    for path, (cmd, name, switches) in after.items():
        if path in before:
            by_thread[(process_name(cmd), name)] += switches - before[path][2]
    print(f"{shape}: {calls / elapsed:,.0f} calls/s")
    total = 0
    for (proc, name), n in by_thread.most_common():
        total += n
        if n >= 0.05 * calls:
            print(f"  {n / calls:6.2f} per call  {proc:28s} {name}")
    print(f"  {total / calls:6.2f} per call in all (the whole machine)")
    shoal.shutdown()


if __name__ == "__main__":
    main()
