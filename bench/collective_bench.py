"""Collectives and tensor transport on the host backend, as a user sees them.

    PYTHONPATH=build/python python3 bench/collective_bench.py [--json FILE] [--ranks 2,4]

Starts its own single-node cluster (under a temporary root, with `shoal start`) and measures:
  - allreduce (SUM, float32) of 1, 16 and 64 MiB between 2 and 4 actor ranks over the gloo
    (host TCP ring) backend: mean time of 5 after 1 warm-up, and the bus bandwidth
    2(n-1)/n * size / time, the figure NCCL's tests print;
  - a 64 MiB numpy array returned by an actor method and read by another actor: through the
    object store (the default) and through tensor_transport="gloo" (held by the producer, sent
    over TCP on demand).
Prints a table and, with --json, writes the figures with the date and the machine. The GPU
figures (NCCL, CUDA IPC) come from bench/gpu/run_gpu_suite.sh on a GPU machine.
"""
import argparse
import datetime
import json
import os
import platform
import sys
import time

import numpy as np

from bench_cluster import local_cluster


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    parser.add_argument("--ranks", default="2,4")
    args = parser.parse_args()
    figures = {}
    with local_cluster("shoal-coll-bench-", head_cpus=8) as (address, _):
        import shoal
        import shoal.util.collective as col
        shoal.init(address=address)

        @shoal.remote(num_cpus=1)
        class Rank:
            def setup(self, world, rank, group):
                col.init_collective_group(world, rank, backend="gloo", group_name=group, gloo_timeout=120000)

            def allreduce(self, group, mib, repeats):
                x = np.ones((mib << 20) // 4, dtype=np.float32)
                col.allreduce(x, group_name=group)
                start = time.perf_counter()
                for _ in range(repeats):
                    col.allreduce(x, group_name=group)
                return (time.perf_counter() - start) / repeats

            def make(self, mib):
                return np.ones((mib << 20) // 4, dtype=np.float32)

            @shoal.method(tensor_transport="gloo")
            def make_held(self, mib):
                return np.ones((mib << 20) // 4, dtype=np.float32)

            def consume(self, value):
                return float(value[:8].sum())

        for world in [int(w) for w in args.ranks.split(",")]:
            group = f"bench{world}"
            ranks = [Rank.remote() for _ in range(world)]
            shoal.get([r.setup.remote(world, i, group) for i, r in enumerate(ranks)])
            for mib in (1, 16, 64):
                seconds = max(shoal.get([r.allreduce.remote(group, mib, 5) for r in ranks]))
                busbw = 2 * (world - 1) / world * (mib << 20) / seconds / 1e9
                name = f"allreduce {mib} MiB, {world} ranks (gloo)"
                figures[name] = {"ms": round(seconds * 1000, 2), "busbw_GBps": round(busbw, 2)}
                print(f"{name:42s} {seconds * 1000:9.2f} ms  {busbw:6.2f} GB/s bus", flush=True)
            for r in ranks:
                shoal.kill(r)

        producer, consumer = Rank.remote(), Rank.remote()
        for label, method in (("object store", producer.make), ("tensor_transport=gloo", producer.make_held)):
            times = []
            for _ in range(4):
                ref = method.remote(64)
                shoal.wait([ref])
                start = time.perf_counter()
                shoal.get(consumer.consume.remote(ref))
                times.append(time.perf_counter() - start)
                del ref
            seconds = sorted(times[1:])[len(times[1:]) // 2]
            name = f"64 MiB actor -> actor ({label})"
            figures[name] = {"ms": round(seconds * 1000, 2), "GBps": round(64 * (1 << 20) / seconds / 1e9, 2)}
            print(f"{name:42s} {seconds * 1000:9.2f} ms  {64 * (1 << 20) / seconds / 1e9:6.2f} GB/s", flush=True)
        shoal.shutdown()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": datetime.date.today().isoformat(), "machine": platform.node(),
                       "cpus": os.cpu_count(), "figures": figures}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
