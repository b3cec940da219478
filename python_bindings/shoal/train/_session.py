"""What a training function sees from inside a worker: its context, `report` and
`get_checkpoint` (Ray's ray.train.report / get_checkpoint / get_context).

A training worker (or a Tune trial) runs the user's function on a thread of its actor with one
_Session installed; `report` persists the checkpoint it is given into the run's storage and
queues the metrics for the controller, which collects them with the actor's `poll` calls."""
import threading
import time

from shoal.train import _storage
from shoal.train._checkpoint import Checkpoint

_current = None
_current_lock = threading.Lock()


class TrainContext:
    """Who this worker is in its run (Ray's ray.train.get_context())."""

    def __init__(self, info):
        self._info = dict(info)

    def get_world_rank(self):
        return self._info["world_rank"]

    def get_world_size(self):
        return self._info["world_size"]

    def get_local_rank(self):
        return self._info["local_rank"]

    def get_local_world_size(self):
        return self._info["local_world_size"]

    def get_node_rank(self):
        return self._info["node_rank"]

    def get_trial_name(self):
        return self._info.get("trial_name")

    def get_trial_id(self):
        return self._info.get("trial_id")

    def get_trial_dir(self):
        return self._info.get("trial_dir")

    def get_experiment_name(self):
        return self._info.get("experiment_name")

    def get_trial_resources(self):
        return dict(self._info.get("resources", {}))

    def get_metadata(self):
        return {}

    def __repr__(self):
        keys = ("world_rank", "world_size", "local_rank", "node_rank", "experiment_name", "trial_name")
        return "TrainContext(" + ", ".join(f"{k}={self._info.get(k)!r}" for k in keys) + ")"


class _Session:
    def __init__(self, info, fs, run_dir, checkpoint, next_checkpoint_index, on_report=None):
        self.context = TrainContext(info)
        self.fs = fs
        self.run_dir = run_dir
        self.checkpoint = checkpoint
        self.next_checkpoint_index = next_checkpoint_index
        self.on_report = on_report  # called with each report instead of queueing it (a trainer inside a trial)
        self.on_stop = None  # set by what the function runs that must be ended before its actor (a trainer's group)
        self.reports = []
        self.seq = 0
        self.done = False
        self.error = None
        self.cond = threading.Condition()

    def report(self, metrics, checkpoint=None, persisted=None):
        if not isinstance(metrics, dict):
            raise TypeError(f"report(metrics=...) takes a dict of metric name to value, got {type(metrics).__name__}")
        if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
            raise TypeError(f"report(checkpoint=...) takes a shoal.train.Checkpoint, got {type(checkpoint).__name__}")
        entry = {"seq": self.seq, "metrics": dict(metrics), "time": time.time(), "checkpoint_index": None}
        if persisted is not None:
            # A checkpoint already in storage (a trainer's, reported up by the trial that ran it).
            entry["checkpoint_path"] = persisted.path
            self.checkpoint = persisted
        elif checkpoint is not None:
            index = self.next_checkpoint_index
            target = _storage.join(self.run_dir, checkpoint_dir_name(index))
            if checkpoint.filesystem is None:
                _storage.upload_dir(checkpoint.path, self.fs, target)
            else:
                with checkpoint.as_directory() as local:
                    _storage.upload_dir(local, self.fs, target)
            self.next_checkpoint_index += 1
            entry["checkpoint_index"] = index
            entry["checkpoint_path"] = target
            self.checkpoint = Checkpoint(target, self.fs)
        self.seq += 1
        if self.on_report is not None:
            self.on_report(entry)
            return
        with self.cond:
            self.reports.append(entry)
            self.cond.notify_all()

    def finish(self, error=None):
        with self.cond:
            self.done = True
            self.error = error
            self.cond.notify_all()

    def take(self, timeout):
        """Waits up to `timeout` seconds for reports or the end; answers what there is."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.reports and not self.done:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            out, self.reports = self.reports, []
            return {"reports": out, "done": self.done and not out, "error": self.error if not out else None}


def checkpoint_dir_name(index):
    return f"checkpoint_{index:06d}"


def install(session):
    global _current
    with _current_lock:
        if _current is not None and session is not None:
            raise RuntimeError("a training session is already running in this worker")
        _current = session


def current():
    return _current


def _require(what):
    session = _current
    if session is None:
        raise RuntimeError(f"shoal.train.{what}() can only be called inside a training function run by a "
                           "shoal.train trainer or a shoal.tune trial")
    return session


def report(metrics, *, checkpoint=None, checkpoint_dir_name=None):
    """Reports `metrics` (a dict) of this step and, with `checkpoint`, copies its files into the
    run's storage as the next checkpoint_<n> before answering. Every worker reports at the same
    steps; rank 0's metrics are the run's."""
    if checkpoint_dir_name is not None:
        raise ValueError("report(checkpoint_dir_name=...) is not supported by Shoal: checkpoints are named "
                         "checkpoint_<n> in the run's storage")
    _require("report").report(metrics, checkpoint)


def get_checkpoint():
    """The latest checkpoint of this run (the one restored from, or the last reported), or None."""
    session = _current
    return session.checkpoint if session is not None else None


def get_context():
    return _require("get_context").context
