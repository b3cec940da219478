"""Collective communication between actors and tasks, under Ray's names (ray.util.collective).

    import shoal.util.collective as col

    @shoal.remote
    class Worker:
        def setup(self, world_size, rank):
            col.init_collective_group(world_size, rank, backend="gloo", group_name="g")
        def step(self, grads):
            col.allreduce(grads, group_name="g")        # in place
            return grads

or, from the driver, `col.create_collective_group(workers, 4, [0, 1, 2, 3], backend="gloo",
group_name="g")`, after which each actor's first collective call joins the group.

Operations are blocking and in place. `backend="nccl"` works on CUDA tensors (torch, CuPy), one
GPU per rank; `backend="gloo"` on host memory (numpy arrays, CPU torch tensors). Failures raise
CollectiveError (a RuntimeError): a rank that died or left fails the others' operations at once;
one that stops calling fails them after the group's timeout (CollectiveTimeoutError); calls that do
not match across ranks (operation, dtype, element count, root) raise ValueError on the ranks that
see it. After any failure the group is unusable: destroy it and create it again.
"""
from shoal.util.collective.collective import (CollectiveError, CollectiveTimeoutError, allgather, allreduce,
                                              barrier, broadcast, create_collective_group,
                                              destroy_collective_group, get_collective_group_size, get_rank,
                                              init_collective_group, is_group_initialized, recv, reduce,
                                              reducescatter, send)
from shoal.util.collective.types import Backend, ReduceOp

__all__ = ["Backend", "ReduceOp", "CollectiveError", "CollectiveTimeoutError", "init_collective_group",
           "create_collective_group", "destroy_collective_group", "is_group_initialized", "get_rank",
           "get_collective_group_size", "allreduce", "barrier", "reduce", "broadcast", "allgather",
           "reducescatter", "send", "recv"]
