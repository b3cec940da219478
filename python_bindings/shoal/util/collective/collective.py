"""The collective API (see the package's docstring). Groups live per process; their ranks find
each other through the GCS key-value store and talk over TCP (gloo) or NCCL (src/collective)."""
import json
import os
import threading

from shoal._private import runtime
from shoal.util.collective.types import Backend, ReduceOp

_NAMESPACE = "collective"
_DEFAULT_GLOO_TIMEOUT_MS = 30000
_NCCL_JOIN_TIMEOUT_S = 300.0


class CollectiveError(RuntimeError):
    """A collective operation or group failed (a peer died or left, the group was aborted)."""


class CollectiveTimeoutError(CollectiveError, TimeoutError):
    """A collective operation or join waited past the group's timeout for a peer."""


class _Group:
    def __init__(self, handle, name, backend):
        self.handle = handle
        self.name = name
        self.backend = backend


_lock = threading.Lock()
_groups = {}  # group name -> _Group, for this process


def _destroy_all():
    """Before the core shuts down: this process leaves every group it joined."""
    with _lock:
        groups = [g for g in _groups.values() if g is not None]
        _groups.clear()
    for g in groups:
        try:
            g.handle.destroy()
        except Exception:  # noqa: BLE001 - the GCS may be gone already
            pass


runtime.before_core_shutdown.append(_destroy_all)


def _op_timeout_s():
    value = os.environ.get("SHOAL_COLLECTIVE_TIMEOUT_S", "600")
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"SHOAL_COLLECTIVE_TIMEOUT_S must be a number of seconds, got {value!r}") from None
    if seconds <= 0:
        raise ValueError(f"SHOAL_COLLECTIVE_TIMEOUT_S must be positive, got {value!r}")
    return seconds


def _scoped(group_name):
    """Group names are per job, as actors are: two jobs may both use "default"."""
    return f"{runtime.connect().job_id}/{group_name}"


def _raise_from(error):
    code, message = error.args[0], error.args[1]
    if code == "INVALID_ARGUMENT":
        raise ValueError(message) from None
    if code == "DEADLINE_EXCEEDED":
        raise CollectiveTimeoutError(message) from None
    raise CollectiveError(message) from None


def _call(fn, *args):
    from shoal import _core
    try:
        return fn(*args)
    except _core.StatusError as e:
        _raise_from(e)


def _check_name(group_name):
    if not isinstance(group_name, str) or not group_name or "/" in group_name:
        raise ValueError(f"group_name must be a non-empty string without '/', got {group_name!r}")


def _check_world(world_size, rank):
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an integer in [0, {world_size}), got {rank!r}")


def _cuda_device():
    """The CUDA device this process works on: torch's or CuPy's current one, else 0."""
    import sys
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.current_device()
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        return cupy.cuda.Device().id
    return 0


def init_collective_group(world_size: int, rank: int, backend=Backend.NCCL, group_name: str = "default",
                          gloo_timeout: int = _DEFAULT_GLOO_TIMEOUT_MS):
    """Joins this process to collective group `group_name` as `rank` of `world_size`. Blocks
    until every rank has joined. gloo_timeout (ms) bounds the join and, for the gloo backend,
    each operation's wait for a peer, as in Ray; NCCL operations wait up to
    $SHOAL_COLLECTIVE_TIMEOUT_S (600 s). Raises RuntimeError when this process already joined
    a group of that name, ValueError for bad arguments, CollectiveError when the rank is held by
    another live process, CollectiveTimeoutError when peers did not all arrive in time."""
    _check_name(group_name)
    _check_world(world_size, rank)
    backend = Backend(backend)
    if isinstance(gloo_timeout, bool) or not isinstance(gloo_timeout, int) or gloo_timeout <= 0:
        raise ValueError(f"gloo_timeout must be a positive number of milliseconds, got {gloo_timeout!r}")
    core = runtime.connect()
    with _lock:
        if group_name in _groups:
            raise RuntimeError(f"Trying to initialize a group twice: {group_name!r}")
        _groups[group_name] = None  # joining: a second init in another thread fails as above
    try:
        if backend == Backend.GLOO:
            join_s = op_s = gloo_timeout / 1000.0
            device = -1
        else:
            join_s, op_s, device = max(_NCCL_JOIN_TIMEOUT_S, gloo_timeout / 1000.0), _op_timeout_s(), _cuda_device()
        handle = _call(core.join_collective_group, _scoped(group_name), world_size, rank, backend,
                       runtime.local_node_ip(), join_s, op_s, device)
    except BaseException:
        with _lock:
            _groups.pop(group_name, None)
        raise
    with _lock:
        _groups[group_name] = _Group(handle, group_name, backend)


def create_collective_group(actors, world_size: int, ranks, backend=Backend.NCCL, group_name: str = "default",
                            gloo_timeout: int = _DEFAULT_GLOO_TIMEOUT_MS):
    """Declares a collective group of `actors` from the driver: actor i gets ranks[i]. Each actor
    joins on its first collective call in that group (so every actor must make one). Raises
    RuntimeError when a group of that name was already declared by this job."""
    from shoal.actor import ActorHandle
    _check_name(group_name)
    actors = list(actors)
    ranks = list(ranks)
    backend = Backend(backend)
    if not actors or not all(isinstance(a, ActorHandle) for a in actors):
        raise ValueError("actors must be a non-empty list of actor handles")
    if len(ranks) != len(actors):
        raise ValueError(f"Each actor should correspond to one rank: {len(actors)} actors, {len(ranks)} ranks")
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size != len(actors):
        raise ValueError(f"world_size ({world_size!r}) must equal the number of actors ({len(actors)})")
    if sorted(ranks) != list(range(world_size)):
        raise ValueError(f"ranks must be a permutation of 0..{world_size - 1}, got {ranks}")
    ids = [a._actor_id.hex() if isinstance(a._actor_id, bytes) else str(a._actor_id) for a in actors]
    if len(set(ids)) != len(actors):
        raise ValueError("an actor appears twice in the group")
    if isinstance(gloo_timeout, bool) or not isinstance(gloo_timeout, int) or gloo_timeout <= 0:
        raise ValueError(f"gloo_timeout must be a positive number of milliseconds, got {gloo_timeout!r}")
    info = json.dumps({"actors": ids, "ranks": ranks, "world_size": world_size,
                       "backend": backend, "gloo_timeout": gloo_timeout})
    core = runtime.connect()
    if not core.kv_put(_NAMESPACE, _scoped(group_name) + "/declared", info.encode(), False):
        raise RuntimeError(f"Trying to initialize a group twice: {group_name!r} was already created")


def destroy_collective_group(group_name: str = "default") -> None:
    """Leaves the group in this process (its peers' operations then fail). From the process that
    declared it with create_collective_group, also removes the declaration."""
    _check_name(group_name)
    with _lock:
        group = _groups.pop(group_name, None)
    if group is not None:
        group.handle.destroy()
        return
    if runtime.is_initialized():
        runtime.core().kv_del(_NAMESPACE, _scoped(group_name) + "/declared")


def is_group_initialized(group_name: str = "default") -> bool:
    with _lock:
        return _groups.get(group_name) is not None


def get_rank(group_name: str = "default") -> int:
    """This process's rank in the group, or -1 when it has not joined it."""
    with _lock:
        group = _groups.get(group_name)
    return group.handle.rank if group is not None else -1


def get_collective_group_size(group_name: str = "default") -> int:
    """The group's world size, or -1 when this process has not joined it."""
    with _lock:
        group = _groups.get(group_name)
    return group.handle.size if group is not None else -1


def _group(group_name):
    """The joined group; an actor declared a member by create_collective_group joins now."""
    _check_name(group_name)
    with _lock:
        group = _groups.get(group_name)
    if group is not None:
        return group
    core = runtime.connect()
    declared = core.kv_get(_NAMESPACE, _scoped(group_name) + "/declared")
    if declared is None:
        raise RuntimeError(f"The collective group {group_name!r} is not initialized in this process "
                           "(call init_collective_group, or create_collective_group from the driver)")
    info = json.loads(declared)
    me = core.current_actor
    if not me or me not in info["actors"]:
        raise RuntimeError(f"This process is not a member of collective group {group_name!r}")
    rank = info["ranks"][info["actors"].index(me)]
    init_collective_group(info["world_size"], rank, info["backend"], group_name, info["gloo_timeout"])
    with _lock:
        return _groups[group_name]


def _op_name(op):
    if isinstance(op, ReduceOp):
        return op.name
    if isinstance(op, str) and op.upper() in ReduceOp.__members__:
        return op.upper()
    raise ValueError(f"op must be a ReduceOp (SUM, PRODUCT, MIN, MAX), got {op!r}")


def _kind(tensor):
    import numpy
    if isinstance(tensor, numpy.ndarray):
        return "numpy"
    module = type(tensor).__module__
    if module.startswith("torch"):
        return "torch"
    if module.startswith("cupy"):
        return "cupy"
    raise TypeError("collectives work on numpy arrays, torch tensors and CuPy arrays, not "
                    f"{type(tensor).__name__}")


def _describe(tensor, writable=True):
    """(address, element count, dtype name, device or -1, CUDA stream) of a contiguous tensor."""
    kind = _kind(tensor)
    if kind == "numpy":
        if not tensor.flags.c_contiguous:
            raise ValueError("collectives need C-contiguous arrays (use numpy.ascontiguousarray)")
        if writable and not tensor.flags.writeable:
            raise ValueError("collectives work in place: the array is read-only (copy it first)")
        return tensor.ctypes.data, tensor.size, tensor.dtype.name, -1, 0
    if kind == "torch":
        import torch
        if not tensor.is_contiguous():
            raise ValueError("collectives need contiguous tensors (use .contiguous())")
        dtype = str(tensor.dtype).replace("torch.", "")
        if tensor.is_cuda:
            stream = torch.cuda.current_stream(tensor.device).cuda_stream
            return tensor.data_ptr(), tensor.numel(), dtype, tensor.device.index, stream
        return tensor.data_ptr(), tensor.numel(), dtype, -1, 0
    import cupy
    if not tensor.flags.c_contiguous:
        raise ValueError("collectives need C-contiguous arrays (use cupy.ascontiguousarray)")
    return tensor.data.ptr, tensor.size, tensor.dtype.name, tensor.device.id, cupy.cuda.get_current_stream().ptr


def _flat_empty(like, count):
    kind = _kind(like)
    if kind == "numpy":
        import numpy
        return numpy.empty(count, dtype=like.dtype)
    if kind == "torch":
        import torch
        return torch.empty(count, dtype=like.dtype, device=like.device)
    import cupy
    with like.device:
        return cupy.empty(count, dtype=like.dtype)


def _copy_into(dst, flat):
    if _kind(dst) == "torch":
        dst.copy_(flat.view(dst.shape))
    else:
        dst[...] = flat.reshape(dst.shape)


def _concat(tensors):
    kind = _kind(tensors[0])
    if kind == "numpy":
        import numpy
        return numpy.concatenate([t.reshape(-1) for t in tensors])
    if kind == "torch":
        import torch
        return torch.cat([t.reshape(-1) for t in tensors])
    import cupy
    return cupy.concatenate([t.reshape(-1) for t in tensors])


def _check_list(tensor_list, tensor, size, what):
    if not isinstance(tensor_list, (list, tuple)) or len(tensor_list) != size:
        raise ValueError(f"{what}: tensor_list must hold world_size ({size}) tensors")
    for t in tensor_list:
        if _kind(t) != _kind(tensor) or tuple(t.shape) != tuple(tensor.shape) or t.dtype != tensor.dtype:
            raise ValueError(f"{what}: every tensor in tensor_list must have the shape and dtype of tensor "
                             f"({tuple(tensor.shape)}, {tensor.dtype})")


def allreduce(tensor, group_name: str = "default", op=ReduceOp.SUM):
    """In place: every rank's `tensor` becomes `op` over all ranks' tensors."""
    desc = _describe(tensor)
    _call(_group(group_name).handle.allreduce, *desc, _op_name(op))


def barrier(group_name: str = "default"):
    """Returns once every rank of the group has called it."""
    _call(_group(group_name).handle.barrier)


def reduce(tensor, dst_rank: int = 0, group_name: str = "default", op=ReduceOp.SUM):
    """In place on `dst_rank`: its tensor becomes `op` over all ranks'; others keep theirs."""
    desc = _describe(tensor)
    _call(_group(group_name).handle.reduce, *desc, dst_rank, _op_name(op))


def broadcast(tensor, src_rank: int = 0, group_name: str = "default"):
    """In place: every rank's `tensor` becomes `src_rank`'s."""
    desc = _describe(tensor)
    _call(_group(group_name).handle.broadcast, *desc, src_rank)


def allgather(tensor_list: list, tensor, group_name: str = "default"):
    """Fills tensor_list[r] with rank r's `tensor` on every rank."""
    address, count, dtype, device, stream = _describe(tensor, writable=False)
    group = _group(group_name)
    size = group.handle.size
    _check_list(tensor_list, tensor, size, "allgather")
    out = _flat_empty(tensor, count * size)
    out_address = _describe(out)[0]
    _call(group.handle.allgather, address, out_address, count, dtype, device, stream)
    for r in range(size):
        _copy_into(tensor_list[r], out[r * count:(r + 1) * count])


def reducescatter(tensor, tensor_list: list, group_name: str = "default", op=ReduceOp.SUM):
    """Rank r's `tensor` becomes `op` over every rank's tensor_list[r]."""
    address, count, dtype, device, stream = _describe(tensor)
    group = _group(group_name)
    size = group.handle.size
    _check_list(tensor_list, tensor, size, "reducescatter")
    flat = _concat(list(tensor_list))
    _call(group.handle.reducescatter, _describe(flat, writable=False)[0], address, count, dtype, device, stream,
          _op_name(op))


def send(tensor, dst_rank: int, group_name: str = "default"):
    """Sends `tensor` to `dst_rank`, which receives it with recv(..., src_rank=this rank)."""
    desc = _describe(tensor, writable=False)
    _call(_group(group_name).handle.send, *desc, dst_rank)


def recv(tensor, src_rank: int, group_name: str = "default"):
    """Receives into `tensor` what `src_rank` sends to this rank (shape and dtype must match)."""
    desc = _describe(tensor)
    _call(_group(group_name).handle.recv, *desc, src_rank)
