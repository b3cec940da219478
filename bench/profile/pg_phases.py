"""Where the time of Ray's placement-group shape goes: N groups of one {custom: 0.001} bundle
created, waited for and removed (ray_perf.py's shape with N = 100), timed phase by phase.

    PYTHONPATH=build/python python3 bench/profile/pg_phases.py [N] [ROUNDS]

Prints microseconds per group for each phase and groups per second, round by round, on a fresh
local cluster (2 CPUs, 100 `custom`).
"""
import sys
import time

import shoal as ray
from shoal.util import placement_group, remove_placement_group


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    ray.init(num_cpus=2, resources={"custom": 100})
    for r in range(rounds):
        t0 = time.perf_counter()
        pgs = [placement_group(bundles=[{"custom": 0.001}]) for _ in range(n)]
        t1 = time.perf_counter()
        for pg in pgs:
            pg.wait(timeout_seconds=30)
        t2 = time.perf_counter()
        for pg in pgs:
            remove_placement_group(pg)
        t3 = time.perf_counter()
        per = lambda a, b: f"{1e6 * (b - a) / n:.0f}"  # noqa: E731
        print(f"N={n} round {r}: create {per(t0, t1)} us, wait {per(t1, t2)} us, remove {per(t2, t3)} us "
              f"per group; {n / (t3 - t0):.0f} groups/s", flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
