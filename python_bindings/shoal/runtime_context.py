"""shoal.get_runtime_context(): where the calling code runs.

As Ray's, getting the context never starts or joins a cluster; asking it for an id before
init() raises AssertionError. The get_*_id() methods answer hex strings; the older properties
(job_id, node_id, task_id, actor_id, current_placement_group_id) answer id objects and warn."""
import warnings

from shoal._private import runtime
from shoal._private.ids import ActorID, JobID, NodeID, TaskID


def _core():
    if not runtime.is_initialized():
        raise AssertionError("Ray has not been initialized or connected to a cluster: call shoal.init() first "
                             "(Shoal answers Ray's API)")
    return runtime.core()


def _deprecated(new):
    warnings.warn(f"Use {new}() instead", DeprecationWarning, stacklevel=3)


class RuntimeContext:
    def get(self):
        """Ray's older dict of the ids: job_id, node_id, namespace, and in a worker task_id and
        (in an actor) actor_id, as id objects."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context = {"job_id": self.job_id, "node_id": self.node_id, "namespace": self.namespace}
            if runtime.state.mode == "worker":
                if self.task_id is not None:
                    context["task_id"] = self.task_id
                if self.actor_id is not None:
                    context["actor_id"] = self.actor_id
        return context

    def get_job_id(self):
        return _core().job_id

    def get_node_id(self):
        return _core().node_id

    def get_worker_id(self):
        return _core().worker_id

    def get_task_id(self):
        """The running task's id (hex), or None in a driver."""
        _core()
        if runtime.state.mode != "worker":
            return None
        return runtime.current_task()["task_id"] or None

    def get_actor_id(self):
        """The actor this code runs in (hex), or None outside actors (its constructor included)."""
        if runtime.state.mode != "worker":
            return None
        return _core().current_actor or runtime.state.actor_id or None

    def get_placement_group_id(self):
        """The placement group the running task or actor is in (hex), or None."""
        if runtime.state.mode != "worker":
            return None
        return runtime.current_task().get("placement_group_id") or None

    def _actor_info(self, what):
        actor = self.get_actor_id()
        if actor is None:
            raise AssertionError(f"{what} is only available inside an actor")
        with runtime.core_call:
            return actor, runtime.core().get_actor_info(bytes.fromhex(actor))

    @property
    def was_current_actor_reconstructed(self):
        """Whether the actor this code runs in was restarted (max_restarts) at least once."""
        _, info = self._actor_info("was_current_actor_reconstructed")
        return info["num_restarts"] > 0

    def get_actor_name(self):
        """The name of the actor this code runs in ("" when unnamed), or None outside actors."""
        if self.get_actor_id() is None:
            return None
        from shoal.util import state as _state
        entry = _state.get_actor(self.get_actor_id())
        return entry["name"] if entry is not None else ""

    @property
    def current_actor(self):
        """A handle to the actor this code runs in."""
        from shoal.actor import ActorHandle, _handle_fields
        actor, info = self._actor_info("current_actor")
        return ActorHandle(bytes.fromhex(actor), *_handle_fields(info["handle_data"]), _register=True)

    @property
    def job_id(self):
        _deprecated("get_job_id")
        return JobID.from_hex(self.get_job_id())

    def get_runtime_env_string(self):
        """The runtime env the calling code runs in (the job's in a driver), as JSON, with
        local directories replaced by the gcs:// URIs of their uploaded packages."""
        import json
        runtime.core()
        return json.dumps(runtime.state.runtime_env or {})

    @property
    def runtime_env(self):
        from shoal.runtime_env import RuntimeEnv
        return RuntimeEnv(**(runtime.state.runtime_env or {}))

    @property
    def node_id(self):
        _deprecated("get_node_id")
        return NodeID.from_hex(self.get_node_id())

    @property
    def task_id(self):
        _deprecated("get_task_id")
        task = self.get_task_id()
        return TaskID.from_hex(task) if task else None

    @property
    def actor_id(self):
        _deprecated("get_actor_id")
        actor = self.get_actor_id()
        return ActorID.from_hex(actor) if actor else None

    @property
    def current_placement_group_id(self):
        _deprecated("get_placement_group_id")
        from shoal.util.placement_group import PlacementGroupID
        group = self.get_placement_group_id()
        return PlacementGroupID(group) if group else None

    @property
    def namespace(self):
        return runtime.state.namespace

    @property
    def gcs_address(self):
        return _core().gcs_address

    def get_assigned_resources(self):
        """The resources the running task (or the actor this code runs in) holds, as Ray
        answers them: {"CPU": 1.0, "GPU": 0.5, "custom": 2.0}; {} in a driver."""
        if runtime.state.mode != "worker":
            raise AssertionError("get_assigned_resources() is only available in a worker (a task or an actor); "
                                 f"this process is a {runtime.state.mode}")
        return dict(runtime.current_task().get("resources", {}))

    def get_accelerator_ids(self):
        return {"GPU": [str(i) for i in runtime.get_gpu_ids()]}

    @property
    def worker_mode(self):
        return runtime.state.mode


def get_runtime_context():
    return RuntimeContext()
