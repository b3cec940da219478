"""@shoal.remote functions: export by cloudpickle through the GCS KV, submission, options."""
import hashlib
import inspect

import cloudpickle

from shoal import _core
from shoal._private import options as opts
from shoal._private import runtime
from shoal._private import serialization, signature
from shoal._private.generator import ObjectRefGenerator, dynamic_ref
from shoal._private.runtime import ObjectRef, core_call


def export_function(fn, what=None):
    """Puts cloudpickle(fn) in the GCS KV once per process; answers its function id (hex hash).
    A pickle over the GCS's limit (what it captures: large values belong in arguments or
    shoal.put) raises ValueError in Ray's words, naming `what` ("remote function f")."""
    pickled = cloudpickle.dumps(fn)
    fid = hashlib.sha1(pickled).hexdigest()
    if fid not in runtime.state.exported:
        try:
            with core_call:
                runtime.core().kv_put(runtime.FUNCTION_NAMESPACE, fid, pickled, False)
        except Exception as e:  # noqa: BLE001 - only a size refusal is rewritten
            text = str(e)
            if "RESOURCE_EXHAUSTED" not in text and "over the limit" not in text:
                raise
            name = what or f"remote function {getattr(fn, '__qualname__', fn)}"
            raise ValueError(f"The {name} is too large ({len(pickled) / 2**20:.0f} MiB pickled): it captures large "
                             "values; pass them as arguments or through shoal.put() instead. "
                             f"({text.splitlines()[0][:200]})") from None
        runtime.state.exported.add(fid)
    return fid


def pack_arguments(args, kwargs):
    """The task's arguments for the core: a header (number of positional arguments, keyword
    names), then each argument: ObjectRefs at the top level as refs (the callee gets the
    value), other values serialized (large ones put in the store first). Answers
    (core_args, nested_refs, keep) where `keep` holds temporary refs until submission."""
    if not args and not kwargs:
        return [(False, _NO_ARGUMENTS_HEADER)], [], []
    core = runtime.core()
    kw_names = list(kwargs)
    # A flat tuple of plain values: serialized by the standard pickler (serialization._plain).
    header, _ = serialization.serialize_to_bytes((len(args), *kw_names))
    packed = [(False, header)]
    nested = []
    keep = []
    for value in list(args) + [kwargs[k] for k in kw_names]:
        if isinstance(value, ObjectRef):
            packed.append((True, value._id))
            continue
        parts, total, refs = serialization.serialize(value)
        for r in refs:
            nested.append(r._id)
            keep.append(r)
        if total > _core.MAX_INLINE_SIZE:
            with core_call:
                ref = ObjectRef(core.put(parts))
            keep.append(ref)
            packed.append((True, ref._id))
        else:
            packed.append((False, b"".join(parts)))
    return packed, nested, keep


# The header of a call without arguments (most actor method calls), made once.
_NO_ARGUMENTS_HEADER = serialization.serialize_to_bytes((0,))[0]


def unpack_arguments(buffers):
    """The worker side of pack_arguments: (args, kwargs) from the argument buffers."""
    n_positional, *kw_names = serialization.deserialize(buffers[0])
    values = [serialization.deserialize(b) for b in buffers[1:]]
    return values[:n_positional], dict(zip(kw_names, values[n_positional:]))


def submit(function_name, args, kwargs, options, core_options=None):
    """Submits a task; `core_options` is opts.core_options(options) where the caller keeps it."""
    core = runtime.core()
    opts.check_fits_placement_group(options, function_name.rsplit(":", 1)[-1])
    packed, nested, keep = pack_arguments(args, kwargs)
    core_options = opts.core_options(options) if core_options is None else dict(core_options)
    if options.get("runtime_env"):
        core_options["runtime_env"] = runtime.core_runtime_env(options["runtime_env"])
    if nested:
        core_options["nested_refs"] = nested
    with core_call:
        ids = core.submit_task(function_name, packed, core_options)
    del keep
    refs = [ObjectRef(i) for i in ids]
    num_returns = options.get("num_returns", 1)
    if num_returns == "streaming":
        return ObjectRefGenerator(refs[0])
    if num_returns == "dynamic":
        return dynamic_ref(refs[0])
    if num_returns == 0:
        return None
    return refs[0] if num_returns == 1 else refs


class RemoteFunction:
    """A function marked @shoal.remote: call it with `.remote(...)`."""

    def __init__(self, function, options):
        if not callable(function) or inspect.isclass(function):
            raise TypeError(f"@shoal.remote expects a function or a class, got {function!r}")
        self._function = function
        self._options = opts.validate(dict(options))
        if "num_returns" not in self._options and (inspect.isgeneratorfunction(function) or
                                                   inspect.isasyncgenfunction(function)):
            self._options["num_returns"] = "streaming"  # as in Ray: a generator streams its values
        self._name = getattr(function, "__qualname__", getattr(function, "__name__", "function"))
        self._signature = signature.rebuild(signature.describe(function))
        self._core_options = opts.core_options(self._options)  # the same for every call
        self._fid = None
        self._epoch = None
        self.__doc__ = function.__doc__
        self.__name__ = getattr(function, "__name__", "function")
        self.__wrapped__ = function

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Remote functions cannot be called directly. Instead of running '{self.__name__}()', "
                        f"try '{self.__name__}.remote()'.")

    def _function_name(self):
        if self._fid is None or self._epoch != runtime.state.epoch:
            self._fid = export_function(self._function, f"remote function {self._name}")
            self._epoch = runtime.state.epoch
        return f"py:{self._fid}:{self._name}"

    def remote(self, *args, **kwargs):
        signature.check(self._signature, args, kwargs, f"{self._name}.remote()")
        runtime.connect()
        return submit(self._function_name(), args, kwargs, self._options, self._core_options)

    def options(self, **options):
        merged = dict(self._options)
        merged.update(opts.validate(dict(options)))
        parent = self

        class _Options:
            def remote(self, *args, **kwargs):
                signature.check(parent._signature, args, kwargs, f"{parent._name}.remote()")
                runtime.connect()
                return submit(parent._function_name(), args, kwargs, merged)

            def __call__(self, *args, **kwargs):
                return parent(*args, **kwargs)

        return _Options()

    def __getstate__(self):
        return {"function": self._function, "options": self._options}

    def __setstate__(self, s):
        self.__init__(s["function"], s["options"])
