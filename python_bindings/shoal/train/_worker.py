"""The actor that runs a training function (one per training worker or Tune trial)."""
import inspect
import os
import sys
import threading
import traceback

import cloudpickle

import shoal
from shoal._private import runtime
from shoal.train import _session


def call_train_function(fn, config):
    """Calls fn(config), or fn() when it takes no argument and no config was given (Ray's rule)."""
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    except (TypeError, ValueError):
        params = [None]
    if not params:
        if config:
            raise ValueError("train_loop_config was given, but the training function takes no argument: define it "
                             "as `def train_loop_per_worker(config):`")
        return fn()
    return fn(config if config is not None else {})


def actor_options(resources, **extra):
    """TrainWorker options that hold exactly `resources` ({"CPU": 1, "GPU": 0.5, "memory": bytes,
    custom: amount}); `extra` adds scheduling options."""
    custom = dict(resources)
    options = dict(num_cpus=custom.pop("CPU", 0), num_gpus=custom.pop("GPU", 0), max_restarts=0, **extra)
    memory = custom.pop("memory", None)
    if memory:
        options["memory"] = memory
    options["resources"] = custom
    return options


def portable_error(error):
    """`error` itself when it pickles, else a RuntimeError that carries its type, message and
    traceback, so that the controller always gets the cause."""
    try:
        cloudpickle.dumps(error)
        return error
    except Exception:  # noqa: BLE001 - any pickling failure
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        return RuntimeError(f"{type(error).__name__}: {error}\n{text}")


@shoal.remote
class TrainWorker:
    """Runs one training function on a thread; the controller collects its reports with
    `poll` and ends it by killing the actor."""

    def __init__(self):
        self._session = None
        self._thread = None

    def node_info(self):
        ctx = shoal.get_runtime_context()
        return {"node_id": ctx.get_node_id(), "ip": shoal.util.get_node_ip_address(), "pid": os.getpid(),
                "gpu_ids": [str(g) for g in shoal.get_gpu_ids()],
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}

    def execute(self, fn, *args, **kwargs):
        """Runs a set-up step of the controller's backend (torch.distributed and the like)."""
        return fn(*args, **kwargs)

    def start(self, fn, config, info, fs, run_dir, checkpoint, next_checkpoint_index):
        session = _session._Session(info, fs, run_dir, checkpoint, next_checkpoint_index)
        _session.install(session)
        self._session = session
        # The function's thread answers the runtime context (assigned resources, ids) as this
        # actor's calls do.
        task = runtime.current_task()

        def run():
            runtime._loop_task.set(task)
            try:
                call_train_function(fn, config)
            except BaseException as e:  # noqa: BLE001 - every failure of the function is the run's
                traceback.print_exc(file=sys.stderr)
                sys.stderr.flush()
                session.finish(portable_error(e))
            else:
                session.finish()
            finally:
                _session.install(None)

        self._thread = threading.Thread(target=run, name="shoal-train-loop", daemon=True)
        self._thread.start()
        return True

    def stop(self):
        """Ends what the function started that would outlive this actor (a trainer run inside a
        Tune trial removes its worker group); the controller kills the actor next."""
        if self._session is not None and self._session.on_stop is not None:
            self._session.on_stop()
        return True

    def poll(self, timeout_s=1.0):
        if self._session is None:
            raise RuntimeError("poll before start")
        return self._session.take(timeout_s)
