"""The process's Shoal runtime: one core worker (driver or worker mode), ObjectRefs, and the
calls that use them (get, put, wait, cancel, init, shutdown).

Threading: every public call may come from any thread; the core worker is thread-safe and
releases the GIL while it blocks.
"""
import atexit
import contextvars
import json
import os
import sys
import threading
import types
import time

from shoal import _core
from shoal import exceptions
from shoal._private import serialization
from shoal._private.ids import IdMixin, TaskID, check_binary

# Keys in the GCS KV.
FUNCTION_NAMESPACE = "py_fn"

_lock = threading.RLock()


class _State:
    core = None          # _core.CoreWorker
    mode = None          # "driver" | "worker"
    cluster = None       # _core.LocalCluster started by init()
    address = None       # the GCS, host:port
    namespace = "default"
    epoch = 0            # bumped by every shutdown: refs of an old session do nothing
    exported = set()     # function ids this process put in the KV
    runtime_env = None   # the job's (resolved: packages as gcs:// URIs), inherited by its tasks and actors
    interpreter = None   # the Python its workers run (the driver's; in a worker, its job's)
    python_path = None   # the driver's import paths, given to every worker after the packages'
    actor_id = None      # worker mode: the actor this worker runs (hex), once its creation began
    exit_actor = None    # worker mode: the worker's hook for exit_actor() (worker.request_actor_exit)
    async_actor = False  # worker mode: the actor runs its calls on event loops
    node_ip = None       # (epoch, IP of this process's node), see local_node_ip()


state = _State()


# The task an async actor's call runs, for code on the actor's event loop: the core knows the
# running task per thread, and the loop's thread runs many calls (see worker._call_on_loop).
_loop_task = contextvars.ContextVar("shoal_loop_task", default=None)


def current_task():
    """The core's description of the task the calling code runs (core.current_task())."""
    info = _loop_task.get()
    return info if info is not None else core().current_task()


def core():
    c = state.core
    if c is None:
        raise exceptions.ShoalError("Shoal is not initialized: call shoal.init() first")
    return c


def is_initialized():
    return state.core is not None


def _auto_init_enabled():
    return all(os.environ.get(var, "") != "0" for var in ("SHOAL_ENABLE_AUTO_CONNECT", "RAY_ENABLE_AUTO_CONNECT"))


def connect():
    """The core worker, after Ray's implicit init: when this process is not connected yet, the
    first get, put, wait, cancel, kill, get_actor, get_gpu_ids, get_runtime_context, task
    submission or actor creation calls init() with no arguments, which joins $SHOAL_ADDRESS
    (or $RAY_ADDRESS), else the cluster `shoal start` last started on this machine, else starts
    a private local cluster. SHOAL_ENABLE_AUTO_CONNECT=0 (or
    Ray's RAY_ENABLE_AUTO_CONNECT=0) turns this off: such calls then raise ShoalError."""
    c = state.core
    if c is not None:
        return c
    if _auto_init_enabled() and os.environ.get("SHOAL_WORKER_MODE") != "1":
        with _lock:
            if state.core is None:
                init()
    return core()


# ---------------------------------------------------------------------------------------------
# Errors


def status_to_exception(error):
    """The public exception for a _core.StatusError (or its args).

    A failure the core typed (error_type, the proto ErrorType's name) maps through the one table
    exceptions.ERROR_TYPES; a TASK_EXCEPTION is the task's own exception when it unpickles (else a
    TaskError naming its type). Untyped failures are bad calls: their status code decides."""
    code, message, error_type, exception_type, data = (
        error.args if isinstance(error, _core.StatusError) else error)
    if data:
        try:
            exc = serialization.deserialize(data)
            if isinstance(exc, BaseException):
                return exc
        except Exception:  # noqa: BLE001 - fall through to a generic error
            pass
    if error_type == "TASK_EXCEPTION":  # from a non-Python task (e.g. a C++ exception)
        return exceptions.TaskError(function_name="task", traceback_str=f"{exception_type}: {message}",
                                    cause_type_name=exception_type)
    if error_type in exceptions.ERROR_TYPES:
        return exceptions.ERROR_TYPES[error_type](message)
    if code == "DEADLINE_EXCEEDED":
        return exceptions.GetTimeoutError(message)
    if code in ("INVALID_ARGUMENT", "ALREADY_EXISTS", "NOT_FOUND"):
        return ValueError(message)
    if code == "UNAVAILABLE":
        return exceptions.ShoalSystemError(message)
    return exceptions.ShoalError(f"{code}: {message}")


class _CoreCall:
    """`with _CoreCall(): ...` turns _core.StatusError into the public exceptions."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, _core.StatusError):
            raise status_to_exception(exc) from None
        return False


core_call = _CoreCall()


# ---------------------------------------------------------------------------------------------
# ObjectRef


class ObjectRef(IdMixin):
    """A reference to an object in the cluster (a task's result or a `put` value).

    Copies of the Python object share one reference count in the core; when the last ObjectRef
    for an id goes, the owner may free the value. `ObjectRef.from_hex`, `from_binary`, `nil` and
    `from_random` make refs of known ids (Ray's ObjectID class methods); such a ref reads only an
    object this process owns or borrows.
    """

    __slots__ = ("_id", "_epoch", "_keep", "__weakref__")
    SIZE = 28
    # ObjectRef[int] in type hints, as Ray's ObjectRef allows.
    __class_getitem__ = classmethod(types.GenericAlias)

    def __init__(self, id_bytes, _add_reference=True, _keep=None):
        if type(id_bytes) is not bytes or len(id_bytes) != 28:
            id_bytes = check_binary(ObjectRef, id_bytes)
        self._id = id_bytes
        self._epoch = state.epoch
        self._keep = _keep  # refs nested in a put value, kept as long as this one
        if _add_reference and state.core is not None:
            state.core.add_reference(id_bytes)

    def __del__(self):
        c = state.core
        if c is not None and self._epoch == state.epoch:
            try:
                c.remove_reference(self._id)
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass

    def task_id(self):
        """The TaskID of the task that returns this object (puts are numbered under one task id
        per process)."""
        return TaskID(self._id[:TaskID.SIZE])

    def __eq__(self, other):
        return isinstance(other, ObjectRef) and other._id == self._id

    def __hash__(self):
        return hash(self._id)

    def __repr__(self):
        return f"ObjectRef({self.hex()})"

    def __reduce__(self):
        sink = serialization.contained_refs_sink()
        if sink is not None:
            sink.append(self)
        owner = ""
        if state.core is not None:
            try:
                owner = state.core.owner_address(self._id)
            except _core.StatusError:
                owner = ""
        return (_rebuild_ref, (self._id, owner))

    def future(self):
        """A concurrent.futures.Future for this object's value."""
        import concurrent.futures
        future = concurrent.futures.Future()

        def resolve():
            try:
                future.set_result(get(self))
            except BaseException as e:  # noqa: BLE001
                future.set_exception(e)

        threading.Thread(target=resolve, daemon=True).start()
        return future

    def __await__(self):
        import asyncio
        return asyncio.wrap_future(self.future()).__await__()


def _rebuild_ref(id_bytes, owner):
    c = state.core
    if c is None or type(id_bytes) is not bytes or len(id_bytes) != ObjectRef.SIZE:
        if c is not None and owner:
            try:
                c.register_borrowed(id_bytes, owner)
            except _core.StatusError:
                pass
        return ObjectRef(id_bytes)
    # The common case, without ObjectRef.__init__'s checks and in one core call (a value holding
    # 10k refs makes 10k of these per get).
    ref = _new_object(ObjectRef)
    ref._id = id_bytes
    ref._epoch = state.epoch
    ref._keep = None
    c.adopt_ref(id_bytes, owner or "")
    return ref


_new_object = object.__new__


# ---------------------------------------------------------------------------------------------
# get / put / wait / cancel


def _as_timeout(timeout):
    if timeout is None:
        return -1.0
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
        raise TypeError(f"timeout must be a number of seconds or None, got {type(timeout).__name__}")
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0 or None, got {timeout}")
    return float(timeout)


def get(refs, *, timeout=None):
    single = isinstance(refs, ObjectRef)
    if single:
        ref_list = [refs]
    elif isinstance(refs, (list, tuple)):
        ref_list = list(refs)
        for r in ref_list:
            if not isinstance(r, ObjectRef):
                raise TypeError(f"get() takes an ObjectRef or a list of ObjectRefs, got a list containing "
                                f"{type(r).__name__}")
    else:
        raise TypeError(f"get() takes an ObjectRef or a list of ObjectRefs, got {type(refs).__name__}")
    t = _as_timeout(timeout)
    c = connect()
    if not ref_list:
        return []
    with core_call:
        results = c.get([r._id for r in ref_list], t)
    values = []
    for result in results:
        if isinstance(result, _core.StatusError):
            raise status_to_exception(result)
        values.append(serialization.deserialize(result))
    return values[0] if single else values


def put(value, *, _owner=None):
    if isinstance(value, ObjectRef):
        raise TypeError("Calling 'put' on an ObjectRef is not allowed. If you really want to do this, you can "
                        "wrap the ObjectRef in a list and call 'put' on it.")
    c = connect()
    parts, _, nested = serialization.serialize(value)
    with core_call:
        id_bytes = c.put(parts)
    return ObjectRef(id_bytes, _keep=nested or None)


def wait(refs, *, num_returns=1, timeout=None, fetch_local=True):
    # Checks in Ray's order: the arguments' types and the timeout, then (after connecting) an
    # empty list answers ([], []) whatever num_returns is, then the rest.
    if isinstance(refs, ObjectRef) or not isinstance(refs, (list, tuple)):
        raise TypeError(f"wait() expects a list of ObjectRefs, got {type(refs).__name__}")
    from shoal._private.generator import ObjectRefGenerator
    refs = list(refs)
    t = _as_timeout(timeout)
    # The common case in one native pass: a connected process, a list of ObjectRefs only, valid
    # arguments. Anything else (None back) takes the general path below, with its errors.
    if (refs and is_initialized() and type(num_returns) is int and 0 < num_returns <= len(refs)
            and type(fetch_local) is bool):
        c = connect()
        with core_call:
            split = c.wait_refs(refs, ObjectRef, num_returns, t, fetch_local)
        if split is not None:
            return split[0], split[1]
    # One pass over the list (callers wait on thousands, again and again): the types, the ids,
    # whether a generator is among them.
    ids = []
    generators = False
    for r in refs:
        if isinstance(r, ObjectRef):
            ids.append(r._id)
        elif isinstance(r, ObjectRefGenerator):
            generators = True
        else:
            raise TypeError(f"wait() expects a list of ObjectRefs, got a list containing {type(r).__name__}")
    c = connect()
    if not refs:
        return [], []
    if len(set(ids)) != len(ids) or (generators and len(set(refs)) != len(refs)):
        raise ValueError("Wait requires a list of unique object refs.")
    if isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns <= 0:
        raise ValueError(f"Invalid number of objects to return {num_returns!r}: it must be a positive integer")
    if num_returns > len(refs):
        raise ValueError("num_returns cannot be greater than the number of objects provided to wait: "
                         f"{num_returns} > {len(refs)}")
    if not isinstance(fetch_local, bool):
        raise TypeError(f"fetch_local must be a bool, got {type(fetch_local).__name__}")
    if generators:
        ready = _wait_with_generators(c, refs, num_returns, t, fetch_local)
    else:
        with core_call:
            ready = c.wait(ids, num_returns, t, fetch_local)
    # The first num_returns ready ones, in the list's order; the rest keep their order.
    done, rest = [], []
    for r, f in zip(refs, ready):
        (done if f and len(done) < num_returns else rest).append(r)
    return done, rest


def _wait_with_generators(c, refs, num_returns, timeout, fetch_local):
    """Ready flags for a wait whose list holds generators (ready: their next ref would come
    without waiting, as Ray's wait treats an ObjectRefGenerator). Polls, backing off to 20 ms."""
    from shoal._private.generator import ObjectRefGenerator
    deadline = None if timeout < 0 else time.monotonic() + timeout
    plain = [i for i, r in enumerate(refs) if not isinstance(r, ObjectRefGenerator)]
    pause = 0.001
    while True:
        flags = [False] * len(refs)
        if plain:
            with core_call:
                plain_ready = c.wait([refs[i]._id for i in plain], len(plain), 0.0, fetch_local)
            for i, f in zip(plain, plain_ready):
                flags[i] = f
        for i, r in enumerate(refs):
            if isinstance(r, ObjectRefGenerator):
                flags[i] = r.next_ready()
        if sum(flags) >= num_returns or (deadline is not None and time.monotonic() >= deadline):
            return flags
        time.sleep(pause if deadline is None else max(0.0, min(pause, deadline - time.monotonic())))
        pause = min(pause * 2, 0.02)


def cancel(ref, *, force=False, recursive=True):
    from shoal._private.generator import ObjectRefGenerator
    if isinstance(ref, ObjectRefGenerator):
        ref = ref.completed()  # the generator's task
    if not isinstance(ref, ObjectRef):
        raise TypeError(f"cancel() takes an ObjectRef or an ObjectRefGenerator, got {type(ref).__name__}")
    if not isinstance(force, bool) or not isinstance(recursive, bool):
        raise TypeError("cancel(): force and recursive must be bools")
    c = connect()
    with core_call:
        c.cancel(ref._id, force, recursive)


# ---------------------------------------------------------------------------------------------
# init / shutdown


def _current_cluster_address(required=True):
    """The GCS address of the cluster `shoal start --head` last started on this machine (removed
    by `shoal stop`); without one, ConnectionError, or None when not `required`."""
    root = os.environ.get("SHOAL_TMPDIR") or "/tmp/shoal"
    path = os.path.join(root, "shoal_current_cluster")
    try:
        with open(path) as f:
            address = f.read().strip()
    except OSError:
        address = ""
    if not address:
        if not required:
            return None
        raise ConnectionError(f"address='auto' found no Shoal cluster started on this machine (no {path}); "
                              "start one with `shoal start --head`")
    return address


def _normalize_address(address):
    for prefix in ("shoal://", "ray://"):
        if address.startswith(prefix):
            raise ValueError(f"{prefix} client addresses are not supported; give the head's GCS address "
                             "host:port (as printed by `shoal start --head`)")
    if address.startswith("http://") or address.startswith("https://"):
        raise ValueError(f"{address!r} looks like a dashboard URL; shoal.init() needs the GCS address host:port")
    if ":" not in address:
        raise ValueError(f"address must be host:port, 'auto', or None, got {address!r}")
    return address


def _driver_python_path():
    """The driver's import paths that its workers get (after the runtime env's packages): the
    shoal package, the script's directory, the current directory and PYTHONPATH."""
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = [package_parent]
    if sys.path and sys.path[0]:
        paths.append(os.path.abspath(sys.path[0]))
    paths.append(os.getcwd())
    for p in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if p:
            paths.append(os.path.abspath(p))
    # Not the interpreter's own package directories (a pip-installed shoal's parent is
    # site-packages): on PYTHONPATH they would hide what a runtime env's virtualenv installs.
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix) if p}
    seen = []
    for p in paths:
        real = os.path.realpath(p)
        in_interpreter = os.path.basename(real) in ("site-packages", "dist-packages") or any(
            real == pre or real.startswith(pre + os.sep) for pre in prefixes)
        if p not in seen and ":" not in p and not in_interpreter:
            seen.append(p)
    return seen


def worker_command():
    """What a raylet runs to start a Python worker: `python -m shoal.worker` with the driver's
    interpreter (its raylet replaces it with a runtime env's virtualenv)."""
    return [state.interpreter or sys.executable, "-m", "shoal.worker"]


def core_runtime_env(runtime_env):
    """What the core takes for a task's or actor's `runtime_env` option (rpc::RuntimeEnv as
    JSON): merged over this process's own as Ray merges (env_vars variable by variable, other
    keys replaced), its local directories uploaded to the cluster's package store."""
    from shoal._private import runtime_env as renv
    key = (state.epoch, repr(runtime_env))
    cached = _core_env_cache.get(key)
    if cached is not None:
        return cached
    merged = renv.merge(state.runtime_env, renv.validate(runtime_env))
    resolved = renv.resolve_packages(core(), merged)
    out = renv.to_core(resolved, state.interpreter or sys.executable, state.python_path or [], state.namespace)
    if len(_core_env_cache) > 256:
        _core_env_cache.clear()
    _core_env_cache[key] = out
    return out


_core_env_cache = {}  # (epoch, repr of the option) -> what core_runtime_env answered


class ShoalContext(dict):
    """What init() answers: address information (a dict, like Ray's context)."""

    @property
    def address_info(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutdown()


def _driver_log_handler(lines, is_stderr):
    stream = sys.stderr if is_stderr else sys.stdout
    try:
        stream.write("".join(line + "\n" for line in lines))
        stream.flush()
    except Exception:  # noqa: BLE001 - a closed stream must not break the core
        pass


def init(address=None, *, num_cpus=None, num_gpus=None, resources=None, namespace=None, runtime_env=None,
         ignore_reinit_error=False, log_to_driver=True, object_store_memory=None, include_dashboard=None,
         logging_level=None, **kwargs):
    # Ray's other init arguments are refused by name rather than accepted and ignored.
    if kwargs:
        raise TypeError(f"shoal.init() does not support the argument(s) {', '.join(sorted(kwargs))}")
    if object_store_memory is not None and (isinstance(object_store_memory, bool)
                                            or not isinstance(object_store_memory, int) or object_store_memory <= 0):
        raise ValueError(f"object_store_memory must be a positive number of bytes, got {object_store_memory!r}")
    if include_dashboard:
        raise ValueError("shoal.init(include_dashboard=True) is not supported: a driver's private cluster runs "
                         "no dashboard; start one with `shoal start --head`")
    if logging_level is not None:
        import logging
        logging.getLogger("shoal").setLevel(logging_level)
    with _lock:
        if state.core is not None:
            if ignore_reinit_error:
                return ShoalContext(address=state.address, gcs_address=state.address)
            raise RuntimeError("Maybe you called shoal.init twice by accident? This error can be suppressed by "
                               "passing in 'ignore_reinit_error=True' or by calling 'shoal.shutdown()' prior to "
                               "'shoal.init()'.")
        if os.environ.get("SHOAL_WORKER_MODE") == "1":
            raise RuntimeError("shoal.init() cannot be called inside a Shoal worker")
        for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0):
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if resources is not None:
            if not isinstance(resources, dict):
                raise TypeError(f"resources must be a dict, got {type(resources).__name__}")
            for k, v in resources.items():
                if k in ("CPU", "GPU"):
                    raise ValueError("Use the 'num_cpus' and 'num_gpus' keyword instead of 'CPU' and 'GPU' in "
                                     "'resources' keyword")
                if not isinstance(v, (int, float)) or v < 0:
                    raise ValueError(f"resource {k!r} must be a non-negative number, got {v!r}")
        from shoal._private import runtime_env as renv
        # A submitted job's environment (the dashboard passes it) merged with init()'s, as Ray does.
        job_env = json.loads(os.environ.get("SHOAL_JOB_RUNTIME_ENV") or "{}")
        requested_env = renv.merge_job_and_driver(renv.validate(job_env), renv.validate(runtime_env))
        # As Ray resolves it: an explicit address, else $SHOAL_ADDRESS / $RAY_ADDRESS, else the
        # cluster last started on this machine, else (or with address="local") a new private one.
        if address is None:
            address = os.environ.get("SHOAL_ADDRESS") or os.environ.get("RAY_ADDRESS") or None
        if address is None:
            address = _current_cluster_address(required=False)
        if address == "local":
            address = None
        cluster = None
        if address is None:
            with core_call:
                cluster = _core.LocalCluster(-1 if num_cpus is None else int(num_cpus),
                                             -1 if num_gpus is None else int(num_gpus),
                                             json.dumps(resources) if resources else "",
                                             -1 if object_store_memory is None else object_store_memory)
            address = cluster.address
        else:
            if num_cpus is not None or num_gpus is not None:
                raise ValueError("When connecting to an existing cluster, num_cpus and num_gpus must not be "
                                 "provided.")
            if object_store_memory is not None:
                raise ValueError("When connecting to an existing cluster, object_store_memory must not be provided.")
            address = _current_cluster_address() if address == "auto" else _normalize_address(address)
        try:
            with core_call:
                # A private cluster's token is known; for another, the core finds it
                # ($SHOAL_AUTH_TOKEN, $SHOAL_AUTH_TOKEN_FILE, or the cluster started on this machine).
                c = _core.CoreWorker.create_driver(address, worker_command(),
                                                   cluster.auth_token if cluster is not None else "")
        except BaseException:
            if cluster is not None:
                cluster.stop()
            raise
        try:
            resolved_env = renv.resolve_packages(c, requested_env)
            # A job's entrypoint runs in the environment its raylet set up: its tasks use the
            # same interpreter name, so they share that node's virtualenv.
            started_in = renv.from_worker_environment()
            state.interpreter = (started_in[1] if started_in and started_in[1] else None) or sys.executable
            state.python_path = _driver_python_path()
            c.set_default_runtime_env(renv.to_core(resolved_env, state.interpreter, state.python_path,
                                                   namespace or "default"))
        except BaseException:
            c.shutdown()
            if cluster is not None:
                cluster.stop()
            raise
        state.runtime_env = resolved_env
        if log_to_driver:
            c.set_log_handler(_driver_log_handler)
        state.core = c
        state.mode = "driver"
        state.cluster = cluster
        state.address = address
        state.namespace = namespace or "default"
        state.exported = set()
        return ShoalContext(address=address, gcs_address=address, node_id=c.node_id, job_id=c.job_id)


def init_worker():
    """Worker mode: the core worker of a `python -m shoal.worker` process."""
    with _lock:
        with core_call:
            c = _core.CoreWorker.create_worker()
        from shoal._private import runtime_env as renv
        started_in = renv.from_worker_environment()
        if started_in is not None:
            state.runtime_env, state.interpreter, state.python_path = started_in
            state.interpreter = state.interpreter or sys.executable
        else:
            state.runtime_env, state.interpreter, state.python_path = {}, sys.executable, []
        state.namespace = renv.worker_namespace() or "default"
        state.core = c
        state.mode = "worker"
        state.address = c.gcs_address
        state.exported = set()
        return c


# Called by shutdown() once the session has ended (state.core is None, the epoch moved on) and
# before the core goes: the package's background threads that call the core finish there.
before_core_shutdown = []  # run by shutdown() with no core connected; last_core() is the one going
_closing_core = None


def last_core():
    """The connected core, or during the before_core_shutdown hooks the one shutting down."""
    return state.core if state.core is not None else _closing_core


def connected_identity(core=None):
    """{"WorkerId", "NodeId", "JobId"} (hex) of this process's connection."""
    c = core or last_core()
    if c is None:
        raise RuntimeError("not connected to a Shoal cluster")
    return {"WorkerId": c.worker_id, "NodeId": c.node_id, "JobId": c.job_id}


def shutdown():
    with _lock:
        c = state.core
        if c is None:
            return
        state.core = None
        state.epoch += 1
        cluster, state.cluster = state.cluster, None
        state.mode = None
        global _closing_core
        _closing_core = c
        try:
            for hook in before_core_shutdown:
                hook()
        finally:
            _closing_core = None
        c.shutdown()
        if cluster is not None:
            cluster.stop()


atexit.register(shutdown)


# ---------------------------------------------------------------------------------------------
# Cluster information


def cluster_status():
    with core_call:
        return _core.cluster_status(core().gcs_address if state.core is not None else state.address)


def _ray_style_node(n):
    return {
        "NodeID": n["node_id"],
        "Alive": n["alive"],
        "alive": n["alive"],
        "NodeManagerAddress": n["address"],
        "NodeManagerHostname": n["hostname"],
        "NodeManagerPort": n["raylet_port"],
        "ObjectManagerPort": n["object_manager_port"],
        "ObjectStoreSocketName": n["object_store_socket"],
        "NodeName": n["address"],
        "IsHead": n["is_head"],
        "Resources": dict(n["resources_total"]) if n["alive"] else {},
        "Labels": dict(n["labels"]),
        "DeathReason": n["death_reason"],
        "SessionDir": n["session_dir"],
    }


def local_node_ip():
    """The IP address this process's node listens on (NodeInfo.address), looked up once per
    session."""
    c = core()
    cached = getattr(state, "node_ip", None)
    if cached is not None and cached[0] == state.epoch:
        return cached[1]
    for n in cluster_status()["nodes"]:
        if n["node_id"] == c.node_id:
            state.node_ip = (state.epoch, n["address"])
            return n["address"]
    raise exceptions.ShoalSystemError(f"this process's node {c.node_id} is not in the GCS's node table")


def nodes():
    core()
    return [_ray_style_node(n) for n in cluster_status()["nodes"]]


def cluster_resources():
    core()
    return dict(cluster_status()["total"])


def available_resources():
    core()
    return {k: v for k, v in cluster_status()["available"].items() if v > 0}


def get_gpu_ids():
    """The GPU ids this worker was granted (from CUDA_VISIBLE_DEVICES); [] in a driver."""
    connect()
    if state.mode != "worker":
        return []
    value = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    ids = []
    for part in value.split(","):
        part = part.strip()
        if part:
            ids.append(int(part) if part.isdigit() else part)
    return ids
