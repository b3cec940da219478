"""The controller of one training run: places the worker group, runs the training function on
every worker, collects the reports, keeps the checkpoints and restores the run after failures.

It runs in the process that calls `fit()` (a driver, or a Tune trial's actor)."""
import json
import re
import sys
import time

import shoal
from shoal import exceptions
from shoal.train import _storage
from shoal.train._checkpoint import Checkpoint
from shoal.train._config import should_stop
from shoal.train._session import checkpoint_dir_name
from shoal.train._worker import TrainWorker, actor_options
from shoal.util.placement_group import placement_group, remove_placement_group
from shoal.util.scheduling_strategies import PlacementGroupSchedulingStrategy

POLL_S = 1.0
WAIT_LOG_S = 10.0  # how often a run waiting for resources says so
_CHECKPOINT_RE = re.compile(r"^checkpoint_(\d{6,})$")
STATE_FILE = "checkpoints.json"
RESULT_FILE = "result.json"


class TrainingFailedError(RuntimeError):
    """A run failed more often than FailureConfig.max_failures allows; the cause is chained."""


def log(message):
    print(f"(shoal.train) {message}", file=sys.stderr, flush=True)


class WorkerFailure(Exception):
    def __init__(self, rank, cause):
        super().__init__(f"Worker {rank} has failed: {type(cause).__name__}: {cause}")
        self.rank = rank
        self.cause = cause


def _fits_somewhere(bundle):
    for node in shoal.nodes():
        if node.get("Alive") and all(node.get("Resources", {}).get(k, 0) >= v - 1e-9 for k, v in bundle.items()):
            return True
    return False


class WorkerGroup:
    """The workers of one attempt: one actor per bundle of one placement group."""

    def __init__(self, scaling, backend=None):
        self.scaling = scaling
        self.backend = backend
        self.pg = None
        self.workers = []
        self.infos = []

    def start(self):
        bundles = self.scaling.as_placement_group_bundles()
        self.pg = placement_group(bundles, strategy=self.scaling.placement_strategy)
        started = time.monotonic()
        while not self.pg.wait(timeout_seconds=WAIT_LOG_S):
            where = ("some node can hold one worker once others free their resources"
                     if _fits_somewhere(bundles[0]) else "no node in the cluster can hold one worker: the run waits "
                     "for one that can to join")
            log(f"Waiting for resources for {len(bundles)} workers of {bundles[0]} "
                f"({self.scaling.placement_strategy}) for {time.monotonic() - started:.0f} s; the placement group is "
                f"pending demand in `shoal status`; {where}.")
        self.workers = [TrainWorker.options(**actor_options(
            bundles[i], scheduling_strategy=PlacementGroupSchedulingStrategy(self.pg, placement_group_bundle_index=i)
        )).remote() for i in range(len(bundles))]
        self.infos = self._gather([w.node_info.remote() for w in self.workers])
        # Ranks on a node and node ranks follow the order in which nodes first appear.
        node_order = []
        for info in self.infos:
            if info["node_id"] not in node_order:
                node_order.append(info["node_id"])
        for rank, info in enumerate(self.infos):
            same_node = [i for i, other in enumerate(self.infos) if other["node_id"] == info["node_id"]]
            info.update(world_rank=rank, world_size=len(self.workers), local_rank=same_node.index(rank),
                        local_world_size=len(same_node), node_rank=node_order.index(info["node_id"]),
                        resources=dict(bundles[rank]))
        if self.backend is not None:
            self.backend.on_start(self)

    def _gather(self, refs):
        """shoal.get of one ref per worker; a failure names the worker's rank."""
        out = []
        for rank, ref in enumerate(refs):
            try:
                out.append(shoal.get(ref))
            except Exception as e:  # noqa: BLE001 - any failure of a worker is that worker's
                raise WorkerFailure(rank, e) from e
        return out

    def execute(self, fn, *args):
        """Runs fn(*args) on every worker; answers the results by rank."""
        return self._gather([w.execute.remote(fn, *args) for w in self.workers])

    def execute_each(self, fn, args_by_rank):
        return self._gather([w.execute.remote(fn, *args) for w, args in zip(self.workers, args_by_rank)])

    def shutdown(self):
        if self.backend is not None and self.workers:
            try:
                self.backend.on_shutdown(self)
            except Exception:  # noqa: BLE001 - best effort: the workers are killed next
                pass
        for worker in self.workers:
            try:
                shoal.kill(worker)
            except Exception:  # noqa: BLE001 - already dead
                pass
        if self.pg is not None:
            try:
                remove_placement_group(self.pg)
            except Exception:  # noqa: BLE001 - already removed
                pass
        self.workers, self.pg = [], None


class CheckpointBook:
    """The run's persisted checkpoints, pruned to CheckpointConfig.num_to_keep (the latest is
    always kept) and recorded in <run>/checkpoints.json."""

    def __init__(self, fs, run_dir, config):
        self.fs, self.run_dir, self.config = fs, run_dir, config
        self.entries = []  # {"index", "path", "metrics"} in the order they were persisted

    def first_free_index(self):
        """The index after every checkpoint directory already in the run's storage, so that a
        new run under an old name never writes into an old checkpoint."""
        used = [int(m.group(1)) for m in map(_CHECKPOINT_RE.match, _storage.list_dirs(self.fs, self.run_dir)) if m]
        return max(used) + 1 if used else 0

    def latest(self):
        return Checkpoint(self.entries[-1]["path"], self.fs) if self.entries else None

    def next_index(self, floor):
        return max([floor] + [e["index"] + 1 for e in self.entries])

    def discard_unregistered(self, floor):
        """Removes checkpoint directories at or after `floor` that were never registered (a
        failed attempt's half-written ones)."""
        known = {e["index"] for e in self.entries}
        for name in _storage.list_dirs(self.fs, self.run_dir):
            m = _CHECKPOINT_RE.match(name)
            if m and int(m.group(1)) >= floor and int(m.group(1)) not in known:
                _storage.delete_dir(self.fs, _storage.join(self.run_dir, name))

    def register(self, index, metrics):
        attr = self.config.checkpoint_score_attribute
        if attr is not None and attr not in metrics:
            raise ValueError(f"CheckpointConfig(checkpoint_score_attribute={attr!r}): the report that saved "
                             f"checkpoint {index} has no metric {attr!r} (reported: {sorted(metrics)})")
        self.entries.append({"index": index, "path": _storage.join(self.run_dir, checkpoint_dir_name(index)),
                             "metrics": metrics})
        keep = self.config.num_to_keep
        if keep is not None and len(self.entries) > keep:
            older = self.entries[:-1]
            if attr is not None:
                sign = 1 if self.config.checkpoint_score_order == "max" else -1
                ranked = sorted(older, key=lambda e: sign * float(e["metrics"][attr]), reverse=True)
            else:
                ranked = sorted(older, key=lambda e: e["index"], reverse=True)
            for gone in ranked[keep - 1:]:
                _storage.delete_dir(self.fs, gone["path"])
                self.entries.remove(gone)
        self.save()

    def save(self):
        _storage.write_text(self.fs, _storage.join(self.run_dir, STATE_FILE),
                            json.dumps(self.entries, default=repr, indent=1))

    def best(self):
        return [(Checkpoint(e["path"], self.fs), e["metrics"]) for e in self.entries]


class TrainingRun:
    """One `fit()`: attempts until the training function finishes, a stop condition is met, or
    failures pass max_failures."""

    def __init__(self, train_fn, config, scaling, run_config, name, backend=None, resume_from=None,
                 trial_info=None, on_report=None):
        self.train_fn = train_fn
        self.config = config
        self.scaling = scaling
        self.run_config = run_config
        self.name = name
        self.backend = backend
        self.resume_from = resume_from
        self.trial_info = trial_info or {}
        self.on_report = on_report  # a Tune trial's hook for rank 0's reports
        self.fs, root = _storage.resolve(run_config.storage_path or _default_storage(), run_config.storage_filesystem)
        self.run_dir = _storage.join(root, name) if name else root
        self.history = []
        self.verbose = 1 if run_config.verbose is None else run_config.verbose
        self.aborted = False
        self._group = None

    def abort(self):
        """Ends the run from another thread: its workers and placement group go, and execute()
        returns what was reported so far."""
        self.aborted = True
        group = self._group
        if group is not None:
            group.shutdown()

    @property
    def path(self):
        return _storage.uri(self.fs, self.run_dir)

    def execute(self):
        from shoal.train.trainer import Result
        _storage.check_writable(self.fs, self.run_dir)
        book = CheckpointBook(self.fs, self.run_dir, self.run_config.checkpoint_config)
        floor = book.first_free_index()
        max_failures = self.run_config.failure_config.max_failures
        failures = 0
        error = None
        while True:
            restore = book.latest() or self.resume_from
            book.discard_unregistered(floor)
            if self.aborted:
                break
            group = WorkerGroup(self.scaling, self.backend)
            self._group = group
            try:
                group.start()
                if restore is not None and (failures or self.resume_from is not None):
                    log(f"Restored on {group.infos[0]['ip']} from checkpoint: {restore}")
                self._attempt(group, book, restore, book.next_index(floor))
                error = None
                break
            except WorkerFailure as failure:
                if self.aborted:
                    break
                log(f"Worker {failure.rank} has failed.")
                error = failure.cause
                failures += 1
                if max_failures != -1 and failures > max_failures:
                    break
                log(f"Restoring the run after failure {failures} of at most "
                    f"{'unlimited' if max_failures == -1 else max_failures}: every worker is stopped and the group "
                    "is placed again on the nodes alive.")
            finally:
                group.shutdown()
        self._write_results()
        result = Result(metrics=self.history[-1] if self.history else {}, checkpoint=book.latest(),
                        error=None, path=self.path, filesystem=self.fs, best_checkpoints=book.best(),
                        metrics_history=list(self.history))
        if error is not None:
            result.error = TrainingFailedError(
                f"Training failed after {failures} failure(s) (FailureConfig(max_failures={max_failures})); the last "
                f"cause: {type(error).__name__}: {error}")
            result.error.__cause__ = error
        return result

    def _attempt(self, group, book, restore, next_index):
        n = len(group.workers)
        starts = []
        for rank, worker in enumerate(group.workers):
            info = dict(group.infos[rank], experiment_name=self.name, **self.trial_info)
            info.setdefault("trial_dir", self.path)
            starts.append(worker.start.remote(self.train_fn, self.config, info, self.fs, self.run_dir, restore,
                                              next_index))
        group._gather(starts)
        pending = {worker.poll.remote(POLL_S): rank for rank, worker in enumerate(group.workers)}
        reports = [[] for _ in range(n)]
        done = [False] * n
        while pending:
            ready, _ = shoal.wait(list(pending), num_returns=1, timeout=POLL_S * 10)
            for ref in ready:
                rank = pending.pop(ref)
                try:
                    out = shoal.get(ref)
                except (exceptions.ShoalError, OSError) as e:
                    raise WorkerFailure(rank, e) from e
                reports[rank].extend(out["reports"])
                if out["error"] is not None:
                    raise WorkerFailure(rank, out["error"])
                if out["done"]:
                    done[rank] = True
                else:
                    pending[group.workers[rank].poll.remote(POLL_S)] = rank
            if self._consume(reports, done, book):
                return  # a stop condition was met

    def _consume(self, reports, done, book):
        """Takes every report that all workers have made (or that the finished ones never
        will): rank 0's metrics join the history and its checkpoint is registered. True when
        RunConfig.stop says the run is over."""
        while reports[0]:
            if not all(r or d for r, d in zip(reports, done)):
                return False
            step = [r.pop(0) if r else None for r in reports]
            metrics = step[0]["metrics"]
            index = next((s["checkpoint_index"] for s in step if s and s["checkpoint_index"] is not None), None)
            if index is not None:
                book.register(index, metrics)
            self.history.append(metrics)
            if self.verbose:
                log(f"{self.name} report {len(self.history)}: {_short(metrics)}"
                    + (f" (checkpoint {checkpoint_dir_name(index)})" if index is not None else ""))
            if self.on_report is not None:
                self.on_report(metrics, book.latest() if index is not None else None)
            if should_stop(self.run_config.stop, self.trial_info.get("trial_id"), metrics):
                return True
        return False

    def _write_results(self):
        lines = "".join(json.dumps(m, default=repr) + "\n" for m in self.history)
        try:
            _storage.write_text(self.fs, _storage.join(self.run_dir, RESULT_FILE), lines)
        except Exception as e:  # noqa: BLE001 - the run's outcome matters more than its log
            log(f"could not write {RESULT_FILE} under {self.path}: {e}")


def _short(metrics):
    text = json.dumps(metrics, default=repr)
    return text if len(text) < 300 else text[:297] + "..."


def _default_storage():
    from shoal.train._config import default_storage_path
    return default_storage_path()
