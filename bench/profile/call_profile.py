"""One Python call shape for `seconds` on a fresh local cluster, for a profiler to watch:

    python3 bench/profile/call_profile.py task|actor SECONDS

Warms up, writes its pid to /tmp/prof/go when the timed window starts (a second later), and prints
{"shape", "calls", "wall_s", "us_per_call"}. bench/profile/run.sh runs it under `perf record -a`
and `perf stat -a`; breakdown.py turns the record into microseconds per call by part."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "python"))
import shoal

shape = sys.argv[1]
seconds = float(sys.argv[2])
shoal.init(num_cpus=2)

@shoal.remote
def noop():
    return None

@shoal.remote
class A:
    def noop(self):
        return None

a = A.remote()
shoal.get(a.noop.remote())
for _ in range(500):
    shoal.get(noop.remote())
    shoal.get(a.noop.remote())
os.makedirs("/tmp/prof", exist_ok=True)
with open("/tmp/prof/go", "w") as marker:
    marker.write(str(os.getpid()))
time.sleep(1.0)  # perf attaches
n = 0
t0 = time.time()
while time.time() - t0 < seconds:
    for _ in range(100):
        if shape == "task":
            shoal.get(noop.remote())
        else:
            shoal.get(a.noop.remote())
    n += 100
wall = time.time() - t0
print(json.dumps({"shape": shape, "calls": n, "wall_s": wall, "us_per_call": wall / n * 1e6}))
shoal.shutdown()
