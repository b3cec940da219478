"""shoal.get_runtime_context(): where the calling code runs."""
from shoal._private import runtime


class RuntimeContext:
    def get_job_id(self):
        return runtime.core().job_id

    def get_node_id(self):
        return runtime.core().node_id

    def get_worker_id(self):
        return runtime.core().worker_id

    def get_task_id(self):
        """The running task's id (hex), or None in a driver."""
        runtime.core()
        if runtime.state.mode != "worker":
            return None
        return runtime.current_task()["task_id"] or None

    def get_actor_id(self):
        """The actor this code runs in (hex), or None outside actors."""
        if runtime.state.mode != "worker":
            return None
        return runtime.core().current_actor or None

    @property
    def job_id(self):
        return self.get_job_id()

    @property
    def node_id(self):
        return self.get_node_id()

    @property
    def task_id(self):
        return self.get_task_id()

    @property
    def namespace(self):
        return runtime.state.namespace

    @property
    def gcs_address(self):
        return runtime.core().gcs_address

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
    runtime.connect()
    return RuntimeContext()
