"""Types of the collective API, under Ray's names (ray.util.collective.types)."""
from enum import Enum


class Backend:
    """Collective backends. NCCL works on CUDA tensors (torch or CuPy), one GPU per rank; GLOO
    on host memory (numpy arrays, CPU torch tensors), implemented by Shoal over TCP between the
    ranks (the same operations, arguments and in-place results as Ray's gloo backend)."""
    NCCL = "nccl"
    GLOO = "gloo"
    UNRECOGNIZED = "unrecognized"

    def __new__(cls, name: str):
        backend = str(name).lower()
        if backend in (cls.NCCL, cls.GLOO):
            return backend
        if backend == "mpi":
            raise RuntimeError("Shoal's collectives have no MPI backend (use \"nccl\" or \"gloo\")")
        raise ValueError(f"unrecognized collective backend {name!r} (Shoal has \"nccl\" and \"gloo\")")


class ReduceOp(Enum):
    SUM = 0
    PRODUCT = 1
    MIN = 2
    MAX = 3


unset_timeout_ms = -1
