"""@shoal.remote classes: actors, their handles and method calls.

An actor is created through the GCS, which leases a worker for it with the actor's resources
(held for its whole life), runs the constructor there, and publishes its address; handles call
methods straight on that worker, in order per caller (see src/worker/actor_submitter.h).

Resources: as in Ray, an actor with no explicit resources holds none while it lives (so many
small actors fit on a node); give num_cpus / num_gpus / resources to hold them.
Lifetime: an actor dies with the process that created it (its owner) unless created with
lifetime="detached"; `shoal.kill` ends it at once. Handles can be passed to other tasks and
actors. As in Ray, an unnamed, non-detached actor whose every handle in its creator is gone
ends too, after the calls made through those handles finish, unless a handle was passed out
of the process (pickled): other processes' handles are not counted, so such an actor lives
on until its owner exits or it is killed.
"""
import functools
import inspect
import threading
import time
import weakref

from shoal._private import options as opts
from shoal._private import runtime
from shoal._private import serialization, signature
from shoal._private import tensor_transport
from shoal._private.generator import ObjectRefGenerator, dynamic_ref
from shoal._private.runtime import ObjectRef, core_call

ACTOR_OPTIONS = {"num_cpus", "num_gpus", "memory", "resources", "max_restarts", "max_task_retries",
                 "max_concurrency", "name", "namespace", "lifetime", "get_if_exists", "scheduling_strategy",
                 "runtime_env", "accelerator_type", "object_store_memory", "concurrency_groups",
                 "max_pending_calls", "_metadata", "label_selector", "placement_group",
                 "placement_group_bundle_index", "placement_group_capture_child_tasks"}


def _validate_actor_options(options):
    opts.refuse_unsupported(options, "actors")
    opts.validate({k: v for k, v in options.items() if k in opts.TASK_OPTIONS}, opts.TASK_OPTIONS)
    for key in options:
        if key not in ACTOR_OPTIONS:
            raise ValueError(f"Invalid option keyword {key} for actors. Valid ones are {sorted(ACTOR_OPTIONS)}.")
    for key in ("max_restarts", "max_task_retries"):
        if key in options:
            opts.check_retry_count(key, options[key])
    if "max_concurrency" in options:
        v = options["max_concurrency"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"max_concurrency must be an integer >= 1, got {v!r}")
    groups = options.get("concurrency_groups")
    if groups is not None:
        if not isinstance(groups, dict):
            raise TypeError(f"concurrency_groups must be a dict of group name to max concurrency, got "
                            f"{type(groups).__name__}")
        for group, limit in groups.items():
            if not isinstance(group, str) or not group:
                raise ValueError(f"concurrency group names must be non-empty strings, got {group!r}")
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(f"the max concurrency of concurrency group {group!r} must be an integer >= 1, "
                                 f"got {limit!r}")
    if "max_pending_calls" in options:
        v = options["max_pending_calls"]
        if isinstance(v, bool) or not isinstance(v, int) or v == 0 or v < -1:
            raise ValueError(f"max_pending_calls must be -1 (no limit) or an integer >= 1, got {v!r}")
    if options.get("lifetime") not in (None, "detached", "non_detached"):
        raise ValueError(f"lifetime must be None, 'detached' or 'non_detached', got {options['lifetime']!r}")
    # As Ray: a name or namespace of the wrong type is a TypeError, an empty one a ValueError.
    name = options.get("name")
    if name is not None:
        if not isinstance(name, str):
            raise TypeError(f"name must be None or a string, got type {type(name).__name__}")
        if not name:
            raise ValueError("Actor name cannot be an empty string.")
    namespace = options.get("namespace")
    if namespace is not None:
        if not isinstance(namespace, str):
            raise TypeError(f"namespace must be None or a string, got type {type(namespace).__name__}")
        if not namespace:
            raise ValueError('"" is not a valid namespace. Pass None to not specify a namespace.')
    if options.get("get_if_exists") and not name:
        raise ValueError("The actor name must be specified to use `get_if_exists`.")
    return options


def _method_table(cls):
    """Public methods and their options (num_returns from @shoal.method)."""
    table = {}
    for name, member in inspect.getmembers(cls, predicate=callable):
        if name.startswith("__") and name not in ("__call__",):
            continue
        method_options = getattr(member, "__shoal_method_options__", {})
        default_returns = 1
        if inspect.isgeneratorfunction(member) or inspect.isasyncgenfunction(member):
            default_returns = "streaming"  # as in Ray: a generator method streams its values
        static = isinstance(inspect.getattr_static(cls, name, None), staticmethod)
        bound = inspect.ismethod(member)  # a classmethod: `cls` is bound already
        table[name] = {"num_returns": method_options.get("num_returns", default_returns),
                       "signature": signature.describe(member, drop_first=not (static or bound)),
                       "_generator_backpressure_num_objects":
                           method_options.get("_generator_backpressure_num_objects"),
                       "max_task_retries": method_options.get("max_task_retries"),
                       "concurrency_group": method_options.get("concurrency_group"),
                       "tensor_transport": method_options.get("tensor_transport")}
    return table


def is_async_class(cls):
    """Whether `cls` makes an async actor (Ray's rule: any method is a coroutine function or an
    async generator); its calls then run on event loops, by default up to 1000 at once."""
    return any(inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
               for _, m in inspect.getmembers(cls, predicate=callable))


# Ray's default max_concurrency of an async actor (a threaded actor's is 1).
DEFAULT_ASYNC_MAX_CONCURRENCY = 1000


class _Scope:
    """Handles of one actor created by this process, and its calls' results still referenced."""

    def __init__(self):
        self.handles = 0
        self.escaped = False
        self.calls = []  # weak references to the ObjectRefs of calls made here
        self.compact_at = 256  # dead references are dropped when calls grows past this


_scopes = {}  # actor id -> _Scope, for unnamed non-detached actors created here
# Reentrant: ActorHandle.__del__ takes it, and the garbage collector can run a __del__ on this
# thread from any allocation made while the lock is held (a plain Lock deadlocked shutdown).
_scopes_lock = threading.RLock()


_scope_threads = set()  # live _end_when_calls_done threads, joined by shutdown
_SCOPE_POLL_S = 0.2
# How long an actor whose handles all went may take to end by itself (its queued calls,
# __ray_shutdown__, atexit handlers) before it is killed: Ray's actor_graceful_shutdown_timeout_ms.
GRACEFUL_SHUTDOWN_S = 30.0


def _end_when_calls_done(actor_id, calls, epoch):
    """Ends the actor once the calls still referenced have results (a daemon thread), as Ray
    ends an actor whose handles all went: gracefully, by a __ray_terminate__ call queued after
    this process's earlier calls (the actor runs its __ray_shutdown__ and atexit handlers, then
    exits), killed if it has not answered within GRACEFUL_SHUTDOWN_S. It polls the core directly
    (the public API would start a new session after a shutdown) and ends within one poll when the
    session ends, so no call of it is in flight at exit."""
    from shoal.remote_function import pack_arguments
    refs = [r for r in (w() for w in calls) if r is not None]  # kept alive while waited on
    ids = [r._id for r in refs]
    terminate, deadline = None, None
    try:
        while runtime.state.epoch == epoch:
            core = runtime.state.core
            if core is None:
                return
            if terminate is None:
                if ids and not all(core.wait(ids, len(ids), _SCOPE_POLL_S, False)):
                    continue
                packed, _, _ = pack_arguments((), {})
                terminate = core.submit_actor_task(actor_id, "__ray_terminate__", packed, {"num_returns": 1})
                deadline = time.monotonic() + GRACEFUL_SHUTDOWN_S
                continue
            if all(core.wait(terminate, 1, _SCOPE_POLL_S, False)):
                return  # answered: the actor is ending by itself
            if time.monotonic() > deadline:
                core.kill_actor(actor_id, True)
                return
    except Exception:  # noqa: BLE001 - the cluster or the actor is already gone
        pass
    finally:
        with _scopes_lock:
            _scope_threads.discard(threading.current_thread())


def _join_scope_threads():
    """Before the core shuts down (runtime.shutdown, after the session's epoch moved on)."""
    with _scopes_lock:
        threads = list(_scope_threads)
    for t in threads:
        try:
            t.join(timeout=10)
        except RuntimeError:
            pass  # listed but not started yet: it finds the session over and returns at once


runtime.before_core_shutdown.append(_join_scope_threads)


def _handle_gone(actor_id):
    with _scopes_lock:
        scope = _scopes.get(actor_id)
        if scope is None:
            return
        scope.handles -= 1
        if scope.handles > 0:
            return
        del _scopes[actor_id]
        if scope.escaped:
            return
    if runtime.state.core is None:
        return
    thread = threading.Thread(target=_end_when_calls_done, args=(actor_id, scope.calls, runtime.state.epoch),
                              name="shoal-actor-scope", daemon=True)
    with _scopes_lock:
        _scope_threads.add(thread)
    thread.start()  # not under the lock: a __del__ in the new thread's start-up may take it


_NO_INHERITANCE = ("Inheriting from actor classes is not currently supported. You can instead inherit from a "
                   "non-actor base class and make the derived class an actor class (with @shoal.remote).")


class ActorClass:
    """A class marked @shoal.remote: create actors with `.remote(...)`."""

    def __new__(cls, *args, **kwargs):
        # `class Derived(SomeActorClass)` calls this type with (name, bases, namespace).
        if len(args) == 3 and isinstance(args[0], str) and isinstance(args[1], tuple):
            raise TypeError(_NO_INHERITANCE)
        return super().__new__(cls)

    def __dir__(self):
        return sorted(set(self._methods) | {"options", "remote"} |
                      {n for n in object.__dir__(self) if n.startswith("_")})

    def __getattr__(self, name):
        # The class's own attributes (constants, static and class methods), as Ray's actor class
        # inherits them: `MyActor.LIMIT`, `MyActor.helper()` work inside and outside the actor.
        if name.startswith("__") or "_cls" not in self.__dict__:
            raise AttributeError(name)
        value = getattr(self.__dict__["_cls"], name)
        if inspect.isfunction(value):
            # A new object, not the class's own function: cloudpickle finds functions by their
            # qualified name (Class.method) and pickles one it finds there by reference, which
            # a worker that cannot import the class's module could not load.
            function = value

            @functools.wraps(function)
            def call(*args, **kwargs):
                return function(*args, **kwargs)

            return call
        return value

    def __init__(self, cls, options):
        self._cls = cls
        self._options = _validate_actor_options(dict(options))
        self._name = cls.__qualname__
        self._methods = _method_table(cls)
        self._init_signature = signature.rebuild(signature.describe(cls.__init__, drop_first=True)) \
            if cls.__init__ is not object.__init__ else None
        self._is_async = is_async_class(cls)
        self._fid = None
        self._epoch = None
        self.__name__ = cls.__name__
        self.__doc__ = cls.__doc__

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Actors cannot be instantiated directly. Instead of '{self.__name__}()', use "
                        f"'{self.__name__}.remote()'.")

    def _function_name(self):
        from shoal.remote_function import export_function
        if self._fid is None or self._epoch != runtime.state.epoch:
            self._fid = export_function(self._cls, f"actor {self._cls.__name__}")
            self._epoch = runtime.state.epoch
        return f"py:{self._fid}:{self._name}"

    def remote(self, *args, **kwargs):
        return self._create(args, kwargs, self._options)

    def _remote(self, args=None, kwargs=None, **options):
        """Ray's ActorClass._remote(args, kwargs, **options): remote() and options() in one call
        (Ray's own microbenchmark creates actors this way)."""
        if options:
            merged = dict(self._options)
            merged.update(_validate_actor_options(dict(options)))
        else:
            merged = self._options
        return self._create(tuple(args or ()), dict(kwargs or {}), merged)

    def options(self, **options):
        merged = dict(self._options)
        merged.update(_validate_actor_options(dict(options)))
        parent = self

        class _Options:
            def remote(self, *args, **kwargs):
                return parent._create(args, kwargs, merged)

        return _Options()

    def _create(self, args, kwargs, options):
        from shoal.remote_function import pack_arguments
        signature.check(self._init_signature, args, kwargs, f"{self._name}.remote()")
        # As Ray: an actor that does not say its CPUs needs 1 to be placed (it runs on 0).
        opts.check_fits_placement_group(options, self._name, default_cpus=1)
        core = runtime.connect()
        packed, nested, keep = pack_arguments(args, kwargs)
        core_options = opts.core_options(options, default_cpus=0)
        core_options.pop("num_returns", None)
        core_options.pop("max_calls", None)  # a task option; an actor's worker lives as long as it
        if options.get("runtime_env"):
            core_options["runtime_env"] = runtime.core_runtime_env(options["runtime_env"])
        if nested:
            core_options["nested_refs"] = nested
        max_task_retries = options.get("max_task_retries") or 0
        groups = dict(options.get("concurrency_groups") or {})
        for method, meta in self._methods.items():
            group = meta.get("concurrency_group")
            if group is not None and group not in groups:
                raise ValueError(f"The method {self._name}.{method} runs in concurrency group {group!r}, which the "
                                 f"actor does not define (concurrency_groups={groups}).")
        extras = {"concurrency_groups": sorted(groups), "max_pending_calls": options.get("max_pending_calls", -1)}
        handle_data, _ = serialization.serialize_to_bytes((self._name, self._methods, max_task_retries, extras))
        default_concurrency = DEFAULT_ASYNC_MAX_CONCURRENCY if self._is_async else 1
        actor_options = {
            "class_name": self._name,
            "max_restarts": options.get("max_restarts") or 0,
            "max_task_retries": max_task_retries,
            "max_concurrency": options.get("max_concurrency") or default_concurrency,
            "is_asyncio": self._is_async,  # its calls start on its event loops, no thread each
            "concurrency_groups": groups,
            "detached": options.get("lifetime") == "detached",
            "get_if_exists": bool(options.get("get_if_exists", False)),
            "handle_data": handle_data,
            "namespace": options.get("namespace") or runtime.state.namespace,
        }
        if options.get("name"):
            actor_options["name"] = options["name"]
        with core_call:
            description = core.create_actor(self._function_name(), packed, core_options, actor_options)
        del keep
        if description["existed"]:
            return ActorHandle(description["actor_id"], *_handle_fields(description["handle_data"]))
        if not options.get("name") and options.get("lifetime") != "detached":
            with _scopes_lock:
                _scopes[description["actor_id"]] = _Scope()
        return ActorHandle(description["actor_id"], self._name, self._methods, max_task_retries, extras)


def _handle_fields(handle_data):
    """(class name, methods, max_task_retries, extras) from an actor's handle_data."""
    fields = serialization.deserialize(handle_data)
    return tuple(fields) if len(fields) == 4 else (*fields, {})


class ActorMethod:
    def __init__(self, handle, name, options):
        self._handle = handle
        self._name = name
        self._options = options

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Actor methods cannot be called directly. Instead of running 'object.{self._name}()', "
                        f"try 'object.{self._name}.remote()'.")

    def remote(self, *args, **kwargs):
        builtin = BUILTIN_METHODS.get(self._name)
        if builtin is not None:  # their arguments are known here: refuse bad ones before the call
            inspect.signature(builtin).bind(None, *args, **kwargs)
        else:
            signature.check(self._handle._signature_of(self._name), args, kwargs,
                            f"{self._handle._class_name}.{self._name}.remote()")
        return self._handle._call(self._name, args, kwargs, self._options)

    def options(self, **options):
        for key in options:
            if key not in ("num_returns", "name", "concurrency_group", "_generator_backpressure_num_objects",
                           "tensor_transport"):
                raise ValueError(f"Invalid option keyword {key} for actor methods.")
        tensor_transport.validate(options.get("tensor_transport"))
        if "num_returns" in options:
            opts.validate_num_returns(options["num_returns"])
        if options.get("_generator_backpressure_num_objects") is not None:
            opts.validate_backpressure(options["_generator_backpressure_num_objects"])
        group = options.get("concurrency_group")
        if group is not None and (not isinstance(group, str) or not group):
            raise ValueError(f"concurrency_group must be a non-empty string, got {group!r}")
        merged = dict(self._options)
        merged.update(options)
        return ActorMethod(self._handle, self._name, merged)


class ActorExit(BaseException):
    """Raised by exit_actor() inside an actor method; the worker ends the actor (worker.py).

    A BaseException, like Ray's SystemExit, so that `except Exception` in user code does not
    swallow it."""


def exit_actor():
    """Ends the actor this code runs in, as Ray's `ray.actor.exit_actor()`: raises ActorExit
    (AsyncioActorExit in an async actor), which stops the running method; the actor exits after
    it even if the code catches that; its caller gets ActorDiedError (a RayActorError), calls
    still queued or made later fail with ActorDiedError, and the actor is not restarted (even
    with max_restarts). Calls already running on other threads of a threaded actor run to
    completion first. Any atexit handlers the actor registered run before it exits.
    TypeError outside an actor (a driver or a normal task)."""
    if runtime.state.mode != "worker" or not runtime.state.actor_id:
        raise TypeError("exit_actor API is called on a non-actor worker. Call this API inside an actor method "
                        "if you'd like to exit the actor gracefully.")
    # As Ray's: the exit is decided here, so that it happens even if the code catches what is
    # raised next (or runs outside any call, in an asyncio task of its own).
    if runtime.state.exit_actor is not None:
        runtime.state.exit_actor("exit_actor() was called")
    if runtime.state.async_actor:
        from shoal.exceptions import AsyncioActorExit
        raise AsyncioActorExit("exit_actor() was called")
    raise ActorExit("exit_actor() was called")


def _ray_ready(instance):
    return True


def _ray_call(instance, fn, *args, **kwargs):
    # The signature callers are checked against; the worker binds `fn` to the instance itself,
    # so that an async `fn` runs on the actor's event loop.
    return fn(instance, *args, **kwargs)


def _ray_terminate(instance):
    raise ActorExit("__ray_terminate__ was called")


# Ray's built-in methods of every actor: handle.__ray_ready__.remote() etc. The worker calls them
# with the actor instance first (worker.py).
BUILTIN_METHODS = {
    "__ray_ready__": _ray_ready,          # True once the constructor has run
    "__ray_call__": _ray_call,            # fn(instance, *args, **kwargs) on the actor
    "__ray_terminate__": _ray_terminate,  # graceful stop: after the caller's earlier calls
    # Shoal's: the owner of a tensor-transport return let go of it (tensor_transport.py).
    "__shoal_free_tensors__": lambda instance, keys: tensor_transport.release(keys),
}


class ActorHandle:
    """A reference to an actor; call methods with `handle.method.remote(...)`.

    Besides the class's methods, every actor answers Ray's built-ins: `__ray_ready__` (a ref
    that resolves to True once the actor is created), `__ray_call__(fn, *args, **kwargs)`
    (runs `fn(instance, *args, **kwargs)` on the actor) and `__ray_terminate__` (ends the
    actor after the calls this caller made before it, as exit_actor() does; its ref raises
    ActorDiedError)."""

    def __init__(self, actor_id, class_name, methods, max_task_retries=0, extras=None, _register=False):
        self._actor_id = actor_id
        self._class_name = class_name
        self._methods = methods
        self._signatures = {}  # method -> signature.rebuild() of its description, made once
        self._max_task_retries = max_task_retries
        self._extras = extras or {}
        self._groups = frozenset(self._extras.get("concurrency_groups", ()))
        self._max_pending_calls = self._extras.get("max_pending_calls", -1)
        with _scopes_lock:
            scope = _scopes.get(actor_id)
            if scope is not None:
                scope.handles += 1
        self._scoped = scope is not None
        if _register and runtime.state.core is not None:
            runtime.state.core.add_actor_handle(actor_id, max_task_retries)

    def __del__(self):
        if getattr(self, "_scoped", False):
            try:
                _handle_gone(self._actor_id)
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass

    def _signature_of(self, method):
        checked = self._signatures.get(method)
        if checked is None:
            meta = self._methods.get(method) or {}
            checked = self._signatures[method] = signature.rebuild(meta.get("signature")) or False
        return checked or None

    def __dir__(self):
        # Ray's: the methods callers may call, and the built-ins a user sees.
        return sorted(set(self._methods) | {"__init__", "__ray_terminate__"})

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        meta = self._methods.get(name)
        if meta is None:
            raise AttributeError(f"'{self._class_name}' actor has no method '{name}'")
        method_options = {"num_returns": meta.get("num_returns", 1), "concurrency_group": meta.get("concurrency_group")}
        if meta.get("_generator_backpressure_num_objects") is not None:
            method_options["_generator_backpressure_num_objects"] = meta["_generator_backpressure_num_objects"]
        if meta.get("tensor_transport") is not None:
            method_options["tensor_transport"] = meta["tensor_transport"]
        return ActorMethod(self, name, method_options)

    @property
    def __ray_ready__(self):
        return ActorMethod(self, "__ray_ready__", {"num_returns": 1})

    @property
    def __ray_call__(self):
        return ActorMethod(self, "__ray_call__", {"num_returns": 1})

    @property
    def __ray_terminate__(self):
        return ActorMethod(self, "__ray_terminate__", {"num_returns": 1})

    def _call(self, method, args, kwargs, options):
        from shoal.remote_function import pack_arguments
        core = runtime.core()
        num_returns = options.get("num_returns", 1)
        transport = options.get("tensor_transport")
        keeps_tensors = transport not in (None, "object_store")
        if keeps_tensors:
            if not isinstance(num_returns, int):
                raise ValueError(f"tensor_transport={transport!r} needs a fixed num_returns, not {num_returns!r}")
            kwargs = dict(kwargs, **{tensor_transport.RESERVED_KEYWORD: transport})
        packed, nested, keep = pack_arguments(args, kwargs)
        core_options = {"num_returns": opts.num_return_refs(options)}
        core_options.update(opts.generator_options(options))
        group = options.get("concurrency_group")
        if group:
            if group not in self._groups:
                raise ValueError(f"The actor {self._class_name} has no concurrency group {group!r} (its groups: "
                                 f"{sorted(self._groups)}); define it with concurrency_groups={{...}}.")
            core_options["concurrency_group"] = group
        if self._max_pending_calls != -1:
            core_options["max_pending_calls"] = self._max_pending_calls
        if nested:
            core_options["nested_refs"] = nested
        with core_call:
            ids = core.submit_actor_task(self._actor_id, method, packed, core_options)
        del keep
        refs = [ObjectRef(i) for i in ids]
        if keeps_tensors and num_returns > 0:
            tensor_transport.watch(refs, self)
        if self._scoped:
            with _scopes_lock:
                scope = _scopes.get(self._actor_id)
                if scope is not None:
                    if len(scope.calls) > scope.compact_at:
                        # Amortized: the next compaction waits until the list doubles, so a
                        # caller holding thousands of results does not rescan them every call.
                        scope.calls = [w for w in scope.calls if w() is not None]
                        scope.compact_at = max(256, 2 * len(scope.calls))
                    scope.calls.extend(weakref.ref(r) for r in refs)
        if num_returns == "streaming":
            return ObjectRefGenerator(refs[0])
        if num_returns == "dynamic":
            return dynamic_ref(refs[0])
        if num_returns == 0:
            return None
        return refs[0] if num_returns == 1 else refs

    def __reduce__(self):
        with _scopes_lock:
            scope = _scopes.get(self._actor_id)
            if scope is not None:
                scope.escaped = True
        return (_rebuild_handle, (self._actor_id, self._class_name, self._methods, self._max_task_retries,
                                  self._extras))

    def __repr__(self):
        return f"Actor({self._class_name}, {self._actor_id.hex()})"

    def __eq__(self, other):
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self):
        return hash(self._actor_id)

    @property
    def _id(self):
        return self._actor_id


def _rebuild_handle(actor_id, class_name, methods, max_task_retries, extras=None):
    return ActorHandle(actor_id, class_name, methods, max_task_retries, extras, _register=True)


def get_actor(name, namespace=None):
    if not isinstance(name, str) or not name:
        raise ValueError(f"get_actor needs a non-empty name, got {name!r}")
    core = runtime.connect()
    with core_call:
        description = core.get_named_actor(name, namespace or runtime.state.namespace)
    return ActorHandle(description["actor_id"], *_handle_fields(description["handle_data"]), _register=True)


def kill(actor, *, no_restart=True):
    if not isinstance(actor, ActorHandle):
        raise ValueError(f"shoal.kill() only supported for actors. For tasks, try shoal.cancel(). Got: {actor!r}.")
    core = runtime.connect()
    with core_call:
        core.kill_actor(actor._actor_id, bool(no_restart))
