"""Shoal: a distributed task runtime with Ray's programming model.

    import shoal
    shoal.init()

    @shoal.remote(num_gpus=0.5)
    def f(x):
        return x * 2

    shoal.get([f.remote(i) for i in range(4)])

Programs written for Ray's core API run with `import shoal as ray` where Shoal offers the
feature.
"""
import inspect as _inspect

import cloudpickle

from shoal import exceptions
from shoal._private.ids import ActorID, JobID, NodeID, TaskID, WorkerID
from shoal._private.runtime import (ObjectRef, available_resources, cancel, cluster_resources, get,
                                    get_gpu_ids, init, is_initialized, nodes, put, shutdown, wait)
from shoal._private import options as _options
from shoal._private.generator import DynamicObjectRefGenerator, ObjectRefGenerator
from shoal.actor import ActorClass, ActorHandle, get_actor, kill
from shoal.remote_function import RemoteFunction
from shoal.runtime_context import get_runtime_context
from shoal import util  # noqa: E402 - shoal.util.ActorPool etc. after a plain `import shoal`

ObjectID = ObjectRef  # Ray's older name


def timeline(filename=None):
    """Recent tasks as a Chrome trace (shoal.util.state.timeline): written to `filename` as JSON
    when given, else answered as a list of trace events."""
    from shoal.util.state import timeline as _timeline
    return _timeline(filename)

__version__ = "0.1.0"


def remote(*args, **options):
    """Marks a function (or a class) as remote.

    @shoal.remote
    @shoal.remote(num_cpus=..., num_gpus=..., memory=..., resources=..., max_retries=...,
                  retry_exceptions=..., scheduling_strategy=..., num_returns=...)
    """
    if len(args) == 1 and not options and callable(args[0]):
        return _make_remote(args[0], {})
    if args:
        raise TypeError("@shoal.remote takes keyword arguments only, e.g. @shoal.remote(num_gpus=0.5)")
    if not options:
        raise TypeError("The @shoal.remote decorator must be applied either with no arguments and no parentheses, "
                        "as '@shoal.remote', or with some of its options, as '@shoal.remote(num_gpus=0.5)'")

    def decorator(target):
        return _make_remote(target, options)

    return decorator


def _make_remote(target, options):
    if _inspect.isclass(target):
        return ActorClass(target, options)
    return RemoteFunction(target, options)


def method(*args, **options):
    """Options of an actor method: @shoal.method(num_returns=2, concurrency_group="io").

    tensor_transport="nccl" (or "gloo") keeps the tensors the method returns (torch, CuPy,
    numpy) in the actor, on their device, and moves them to whoever gets the ref by NCCL, CUDA
    IPC or host staging, as the runtime sees fit (shoal/_private/tensor_transport.py)."""
    for key, value in options.items():
        if key not in ("num_returns", "concurrency_group", "_generator_backpressure_num_objects",
                       "tensor_transport"):
            raise ValueError(f"Invalid option keyword {key} for actor methods. Valid ones are "
                             f"['_generator_backpressure_num_objects', 'concurrency_group', 'num_returns', "
                             f"'tensor_transport'].")
        if key == "tensor_transport":
            from shoal._private.tensor_transport import validate as _validate_transport
            _validate_transport(value)
        if key == "num_returns":
            _options.validate_num_returns(value)
        if key == "_generator_backpressure_num_objects" and value is not None:
            _options.validate_backpressure(value)
        if key == "concurrency_group" and value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"concurrency_group must be a non-empty string, got {value!r}")

    def decorator(fn):
        fn.__shoal_method_options__ = options
        return fn
    if len(args) == 1 and callable(args[0]) and not options:
        return decorator(args[0])
    return decorator


__all__ = ["init", "shutdown", "is_initialized", "remote", "method", "get", "put", "wait", "cancel",
           "ObjectRef", "ObjectRefGenerator", "DynamicObjectRefGenerator", "ObjectID", "TaskID", "ActorID", "JobID", "NodeID", "WorkerID", "ActorHandle", "get_actor",
           "kill", "cluster_resources", "available_resources", "nodes", "get_gpu_ids", "get_runtime_context",
           "exceptions", "cloudpickle", "util", "timeline"]
