"""Shoal's exceptions, with Ray's names as aliases (so `except ray.exceptions.X` works under
`import shoal as ray`)."""


class ShoalError(Exception):
    """Base of every error Shoal raises."""


class ShoalSystemError(ShoalError):
    """The runtime broke (not the user's code)."""


class TaskError(ShoalError):
    """A remote function or actor method raised.

    `get` raises it as an instance of both TaskError and the original exception's type (when
    that type can be subclassed), so `except ValueError` catches a remote ValueError. `cause`
    is the original exception (when it could be unpickled) and `traceback_str` the remote
    traceback.
    """

    def __init__(self, function_name="", traceback_str="", cause=None, pid=None, node=None,
                 cause_type_name=None):
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.pid = pid
        self.node = node
        self.cause_type_name = cause_type_name or (type(cause).__name__ if cause is not None else "Exception")
        super().__init__(self._message())

    def _message(self):
        where = f"pid={self.pid}" if self.pid is not None else ""
        if self.node:
            where += f", node={self.node[:8]}"
        head = f"{self.function_name}() failed ({where})" if where else f"{self.function_name}() failed"
        body = self.traceback_str.rstrip() if self.traceback_str else f"{self.cause_type_name}: {self.cause}"
        return f"{head}:\n{body}"

    def __str__(self):
        return self._message()

    def as_instanceof_cause(self):
        """This error as an instance of a class derived from TaskError and the cause's class (the
    innermost cause's, when a task failed because a task it waited for failed, as in Ray)."""
        root = self.cause
        while isinstance(root, TaskError) and root.cause is not None:  # a task that failed on a failed get
            root = root.cause
        cause_cls = type(root) if root is not None else None
        if cause_cls is None or issubclass(cause_cls, TaskError) or issubclass(TaskError, cause_cls) \
                or not _subclassable(cause_cls):
            return self  # a plain Exception (or a base of TaskError): TaskError itself is one already
        derived = _derived_class(cause_cls)
        if derived is None:
            return self
        error = derived.__new__(derived)
        error.__dict__.update(self.__dict__)
        error.args = (self._message(),)
        return error

    def __reduce__(self):
        return (_rebuild_task_error, (self.function_name, self.traceback_str, self.cause, self.pid, self.node,
                                      self.cause_type_name))


def _rebuild_task_error(function_name, traceback_str, cause, pid, node, cause_type_name):
    return TaskError(function_name, traceback_str, cause, pid, node, cause_type_name).as_instanceof_cause()


_DERIVED = {}


def _subclassable(cls):
    return isinstance(cls, type) and issubclass(cls, BaseException) and not getattr(cls, "__final__", False)


def _derived_class(cause_cls):
    derived = _DERIVED.get(cause_cls)
    if derived is not None:
        return derived
    try:
        derived = type(f"TaskError({cause_cls.__name__})", (TaskError, cause_cls), {
            "__init__": lambda self, *a, **k: None,
            "__str__": TaskError.__str__,
            "__reduce__": TaskError.__reduce__,
        })
    except TypeError:  # layout conflicts (some builtin exception types)
        return None
    derived.__module__ = __name__
    _DERIVED[cause_cls] = derived
    return derived


class GetTimeoutError(ShoalError, TimeoutError):
    """`get` did not see every object within its timeout."""


class WorkerCrashedError(ShoalError):
    """The worker (or node) running a task died and the task's retries are used up."""


class ObjectLostError(ShoalError):
    """An object's every copy is gone (or it was freed)."""


class OwnerDiedError(ObjectLostError):
    """The process that owned an object is gone."""


class ObjectStoreFullError(ShoalError):
    """The object store could not make room for an object."""


class TaskCancelledError(ShoalError):
    """The task was cancelled with `cancel`."""


class TaskUnschedulableError(ShoalError):
    """No node can take the task (the raylet rejected its request)."""


class RayletUnavailableError(ShoalSystemError):
    """The local raylet is gone."""


class ActorError(ShoalError):
    """Base of actor failures."""


class ActorDiedError(ActorError):
    """The actor is dead and will not be restarted."""


class ActorUnavailableError(ActorError):
    """The actor is restarting or unreachable for now."""


class RuntimeEnvSetupError(ShoalError):
    pass


class NodeDiedError(WorkerCrashedError):
    """The node running a task died and the task's retries are used up."""


class ActorUnschedulableError(ActorError):
    """No node can ever host the actor."""


class OutOfMemoryError(ShoalError):
    """The worker was killed for using too much memory."""


class TaskPlacementGroupRemoved(ShoalError):
    """The placement group the task ran in (or was to run in) was removed."""


class ActorPlacementGroupRemoved(ActorDiedError):
    """The placement group the actor ran in was removed."""


class AsyncioActorExit(ShoalError):
    """Raised by exit_actor() inside an async actor (an Exception, as in Ray: raising a
    BaseException on the event loop would stop it). The actor exits after the call even when
    the code catches it."""


class PendingCallsLimitExceeded(ShoalError):
    """An actor call was refused at .remote(): this handle already has max_pending_calls calls
    to the actor that have not finished."""


# The one table from the core's error types (proto ErrorType, by name) to exception classes.
# TASK_EXCEPTION is not here: it is the user's own exception (see runtime.status_to_exception).
ERROR_TYPES = {
    "WORKER_DIED": WorkerCrashedError,
    "NODE_DIED": NodeDiedError,
    "ACTOR_DIED": ActorDiedError,
    "ACTOR_UNSCHEDULABLE": ActorUnschedulableError,
    "TASK_UNSCHEDULABLE": TaskUnschedulableError,
    "OBJECT_LOST": ObjectLostError,
    "OWNER_DIED": OwnerDiedError,
    "TASK_CANCELLED": TaskCancelledError,
    "OBJECT_STORE_FULL": ObjectStoreFullError,
    "RUNTIME_ENV_SETUP_FAILED": RuntimeEnvSetupError,
    "OUT_OF_MEMORY": OutOfMemoryError,
    "GET_TIMEOUT": GetTimeoutError,
    "RAYLET_UNAVAILABLE": RayletUnavailableError,
    "SYSTEM_ERROR": ShoalSystemError,
    "PLACEMENT_GROUP_REMOVED": TaskPlacementGroupRemoved,
    "PENDING_CALLS_LIMIT_EXCEEDED": PendingCallsLimitExceeded,
}

# Ray's names.
RayError = ShoalError
RaySystemError = ShoalSystemError
RayTaskError = TaskError
RayActorError = ActorDiedError
ObjectFetchTimedOutError = GetTimeoutError
ReferenceCountingAssertionError = ObjectLostError
ObjectReconstructionFailedError = ObjectLostError
