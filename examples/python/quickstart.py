"""Shoal from Python, written the way a Ray user writes it.

    PYTHONPATH=build/python python3 examples/python/quickstart.py        # private local cluster
    SHOAL_ADDRESS=127.0.0.1:6379 PYTHONPATH=build/python python3 ...    # join a running one

As Ray's, init() with no address joins the cluster `shoal start` last made on this machine, if
there is one, before it starts a private one.
"""
import os
import time

import numpy as np

import shoal as ray

ray.init()


@ray.remote
def square(x):
    return x * x


@ray.remote
def total(arr):
    # `arr` is a read-only view of the object store's shared memory: no copy was made.
    return float(arr.sum()), arr.flags.writeable


@ray.remote(num_gpus=0.5, num_cpus=0)
def on_half_a_gpu(i):
    time.sleep(0.2)
    print(f"task {i} sees GPUs {ray.get_gpu_ids()}")
    return os.environ.get("CUDA_VISIBLE_DEVICES")


@ray.remote
class Counter:
    def __init__(self):
        self.n = 0

    def incr(self, by=1):
        self.n += by
        return self.n


print("squares:", ray.get([square.remote(i) for i in range(8)]))

big = ray.put(np.ones(25_000_000))  # 200 MB, stored once
print("sums from 4 tasks (value, writeable):", ray.get([total.remote(big) for _ in range(4)]))

counter = Counter.remote()
refs = [counter.incr.remote() for _ in range(100)]
print("counter after 100 ordered calls:", ray.get(refs)[-1])

if ray.cluster_resources().get("GPU", 0) >= 1:
    print("CUDA_VISIBLE_DEVICES of 4 half-GPU tasks:", ray.get([on_half_a_gpu.remote(i) for i in range(4)]))
else:
    print("no GPUs declared in this cluster: skipping the half-GPU tasks")

try:
    ray.get(square.remote("not a number"))
except TypeError as e:
    print("a remote TypeError came back as TypeError:", str(e).splitlines()[-1])

print("cluster resources:", {k: v for k, v in ray.cluster_resources().items() if not k.startswith("node:")})
ray.shutdown()
