"""Python microbenchmark in the shapes of `ray microbenchmark` (single client).

    PYTHONPATH=build/python python3 bench/python_microbenchmark.py [--json FILE] [--ray]
        [--address HOST:PORT] [--num-cpus N] [--duration S]

With --ray it runs the same code under Ray (if installed) for a side-by-side figure on this
machine. Prints one line per benchmark and writes JSON with --json. Not a test: it asserts
nothing about speed.
"""
import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np


def timeit(name, fn, multiplier=1, duration=2.0, warmup=0.3, unit="/s"):
    """Runs fn repeatedly for about `duration` seconds (after a warm-up); answers rate stats."""
    end = time.perf_counter() + warmup
    while time.perf_counter() < end:
        fn()
    rates = []
    for _ in range(3):
        count = 0
        start = time.perf_counter()
        end = start + duration / 3
        while time.perf_counter() < end:
            fn()
            count += 1
        elapsed = time.perf_counter() - start
        rates.append(count * multiplier / elapsed)
    mean = statistics.mean(rates)
    sd = statistics.stdev(rates) if len(rates) > 1 else 0.0
    print(f"{name:40s} {mean:14,.1f} {unit}  +- {sd:,.1f}", flush=True)
    return {"name": name, "value": mean, "stdev": sd, "unit": unit}


def placement_group_create_removal(ray, num_pgs=100):
    """Ray's own shape (ray_perf.py): 100 groups of one {custom: 0.001} bundle, created, waited
    for, removed."""
    util = ray.util
    pgs = [util.placement_group(bundles=[{"custom": 0.001}]) for _ in range(num_pgs)]
    [pg.wait(timeout_seconds=30) for pg in pgs]
    for pg in pgs:
        util.remove_placement_group(pg)


def run(ray, duration, only=None):
    results = []
    if only in (None, "placement_group_create_removal"):
        results.append(timeit("placement_group_create_removal", lambda: placement_group_create_removal(ray),
                              multiplier=100, duration=duration, warmup=0.0))
    if only is not None:
        return results

    @ray.remote
    def small_value():
        return b"ok"

    results.append(timeit("single_client_tasks_sync", lambda: ray.get(small_value.remote()), duration=duration))
    results.append(timeit("single_client_tasks_async",
                          lambda: ray.get([small_value.remote() for _ in range(1000)]), multiplier=1000,
                          duration=duration))
    results.append(timeit("single_client_put_calls", lambda: ray.put(0), duration=duration))
    ref = ray.put(0)
    results.append(timeit("single_client_get_calls", lambda: ray.get(ref), duration=duration))
    arr = np.zeros(100 * 1024 * 1024, dtype=np.int64)  # 800 MiB

    def put_large():
        r = ray.put(arr)
        del r

    results.append(timeit("single_client_put_gigabytes", put_large, multiplier=arr.nbytes / 1e9,
                          duration=max(duration, 3), unit="GB/s"))
    results.append(timeit("single_client_tasks_and_get_batch",
                          lambda: ray.get([small_value.remote() for _ in range(1000)]), duration=duration,
                          unit="batches of 1000/s"))

    def wait_multiple_refs():  # as Ray's: 1,000 tasks, then wait for them one by one
        not_ready = [small_value.remote() for _ in range(1000)]
        for _ in range(1000):
            _, not_ready = ray.wait(not_ready)

    results.append(timeit("single_client_wait_1k_refs", wait_multiple_refs, duration=duration))

    @ray.remote
    class Actor:
        def small_value(self):
            return b"ok"

    a = Actor.remote()
    ray.get(a.small_value.remote())
    results.append(timeit("1_1_actor_calls_sync", lambda: ray.get(a.small_value.remote()), duration=duration))
    results.append(timeit("1_1_actor_calls_async", lambda: ray.get([a.small_value.remote() for _ in range(1000)]),
                          multiplier=1000, duration=duration))
    c = Actor.options(max_concurrency=16).remote()
    ray.get(c.small_value.remote())
    results.append(timeit("1_1_actor_calls_concurrent",
                          lambda: ray.get([c.small_value.remote() for _ in range(1000)]), multiplier=1000,
                          duration=duration))
    n = max(1, int(ray.cluster_resources().get("CPU", 1)))
    actors = [Actor.remote() for _ in range(n)]
    ray.get([x.small_value.remote() for x in actors])

    def n_n():
        ray.get([x.small_value.remote() for _ in range(1000 // n) for x in actors])

    results.append(timeit("n_n_actor_calls_async", n_n, multiplier=(1000 // n) * n, duration=duration))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write results here")
    parser.add_argument("--ray", action="store_true", help="run under Ray instead of Shoal")
    parser.add_argument("--address", help="join this cluster instead of starting one")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per benchmark")
    parser.add_argument("--only", help="run only this benchmark (e.g. placement_group_create_removal)")
    args = parser.parse_args()
    if args.ray:
        import ray
    else:
        import shoal as ray
    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=args.num_cpus, resources={"custom": 100})
    try:
        results = run(ray, args.duration, args.only)
    finally:
        ray.shutdown()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"system": "ray" if args.ray else "shoal", "date": time.strftime("%Y-%m-%d"),
                       "machine": f"{platform.node()} {platform.machine()} python {platform.python_version()}",
                       "num_cpus": args.num_cpus, "results": results}, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
