"""Tuner, TuneConfig and ResultGrid (Ray's ray.tune.Tuner and friends), and the controller
that runs the trials.

Each trial is an actor (the training-worker actor of shoal.train, with the trainable's
resources: 1 CPU by default) that runs the trainable on a thread and hands its reports to the
controller, which runs in the process that calls `fit()`. A trainer as trainable runs each
trial as its own training run (its own placement group) from a trial actor that holds nothing.
The scheduler sees every result as it arrives; a trial it stops is ended at once (its actor is
killed, a trainer's group removed)."""
import collections
import dataclasses
import datetime
import json
import numbers
import sys
import time
import uuid
from typing import Any, Callable, Dict, List, Optional

import shoal
from shoal import exceptions
from shoal.train import _storage
from shoal.train._checkpoint import Checkpoint
from shoal.train._config import RunConfig, default_storage_path, should_stop
from shoal.train._run import CheckpointBook, TrainingRun
from shoal.train._session import current as current_session
from shoal.train._worker import TrainWorker, actor_options
from shoal.train.trainer import DataParallelTrainer, Result
from shoal.tune import schedulers as _schedulers
from shoal.tune.search import BasicVariantGenerator

POLL_S = 1.0

PENDING, RUNNING, TERMINATED, ERROR = "PENDING", "RUNNING", "TERMINATED", "ERROR"


class TuneError(RuntimeError):
    """An experiment that cannot go on (a trial failed with fail_fast="raise", ...)."""


def log(message):
    print(f"(shoal.tune) {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class TuneConfig:
    """How trials are made and scheduled: `metric` and `mode` ("min"/"max") say what is
    optimized (for the scheduler and get_best_result), `num_samples` how often the param_space
    is sampled (each time for every grid combination), `scheduler` which trials stop early,
    `max_concurrent_trials` how many run at once (default: as many as the cluster holds),
    `time_budget_s` when the whole experiment ends."""
    metric: Optional[str] = None
    mode: Optional[str] = None
    search_alg: Any = None
    scheduler: Any = None
    num_samples: int = 1
    max_concurrent_trials: Optional[int] = None
    time_budget_s: Optional[float] = None
    reuse_actors: bool = False
    trial_name_creator: Optional[Callable] = None
    trial_dirname_creator: Optional[Callable] = None

    def __post_init__(self):
        if self.mode not in (None, "min", "max"):
            raise ValueError(f"TuneConfig(mode={self.mode!r}): must be 'min' or 'max'")
        if self.metric is not None and not isinstance(self.metric, str):
            raise TypeError("TuneConfig(metric=...) must be the name of a reported metric")
        if isinstance(self.num_samples, bool) or not isinstance(self.num_samples, numbers.Integral) \
                or self.num_samples < 1:
            raise ValueError(f"TuneConfig(num_samples={self.num_samples!r}): must be an integer >= 1")
        if self.max_concurrent_trials is not None and (isinstance(self.max_concurrent_trials, bool)
                                                       or not isinstance(self.max_concurrent_trials, numbers.Integral)
                                                       or self.max_concurrent_trials < 1):
            raise ValueError(f"TuneConfig(max_concurrent_trials={self.max_concurrent_trials!r}): must be None or an "
                             "integer >= 1")
        if self.time_budget_s is not None and (isinstance(self.time_budget_s, bool)
                                               or not isinstance(self.time_budget_s, numbers.Real)
                                               or self.time_budget_s <= 0):
            raise ValueError(f"TuneConfig(time_budget_s={self.time_budget_s!r}): must be a number of seconds above 0")
        if self.reuse_actors:
            raise ValueError("TuneConfig(reuse_actors=True) is not supported by Shoal: each trial gets a new actor")
        if self.search_alg is not None and not isinstance(self.search_alg, BasicVariantGenerator):
            raise TypeError(f"TuneConfig(search_alg=...): Shoal has only BasicVariantGenerator, got "
                            f"{type(self.search_alg).__name__}")
        if self.scheduler is not None and not isinstance(self.scheduler, _schedulers.TrialScheduler):
            raise TypeError(f"TuneConfig(scheduler=...) must be a shoal.tune.schedulers scheduler, got "
                            f"{type(self.scheduler).__name__}")
        for name in ("trial_name_creator", "trial_dirname_creator"):
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise TypeError(f"TuneConfig({name}=...) must be a function of the trial")


class Trial:
    """One configuration's run."""

    def __init__(self, experiment_id, index, config, trainable_name):
        self.trial_id = f"{experiment_id}_{index:05d}"
        self.index = index
        self.config = config
        self.trainable_name = trainable_name
        self.status = PENDING
        self.results = []
        self.last_result = {}
        self.checkpoint = None
        self.error = None
        self.failures = 0
        self.actor = None
        self.started_at = None
        self.last_report_at = None
        self.stop_reason = None
        self.path = None
        self.book = None

    @property
    def trial_name(self):
        return f"{self.trainable_name}_{self.trial_id}"

    def __str__(self):
        return self.trial_name

    def __repr__(self):
        return f"Trial({self.trial_name}, {self.status}, config={self.config!r})"


class ResultGrid:
    """The results of every trial (Ray's ray.tune.ResultGrid), in the order trials were made."""

    def __init__(self, results, experiment_path, metric=None, mode=None):
        self._results = results
        self.experiment_path = experiment_path
        self._metric = metric
        self._mode = mode

    def __len__(self):
        return len(self._results)

    def __getitem__(self, i):
        return self._results[i]

    def __iter__(self):
        return iter(self._results)

    @property
    def errors(self):
        return [r.error for r in self._results if r.error is not None]

    @property
    def num_errors(self):
        return len(self.errors)

    @property
    def num_terminated(self):
        return sum(1 for r in self._results if r.error is None)

    def get_best_result(self, metric=None, mode=None, scope="last", filter_nan_and_inf=True):
        """The result whose `metric` is best in `mode`, judging each trial by its last
        reported value (scope "last"), its best ("all"), the mean of all ("avg") or of the last
        5 or 10 ("last-5-avg", "last-10-avg")."""
        metric = metric or self._metric
        mode = mode or self._mode
        if not metric or not mode:
            raise ValueError("get_best_result needs a metric and a mode: pass them, or set them in TuneConfig")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if scope not in ("last", "all", "avg", "last-5-avg", "last-10-avg"):
            raise ValueError(f"scope must be one of last, all, avg, last-5-avg, last-10-avg; got {scope!r}")
        pick = max if mode == "max" else min
        scored = []
        for result in self._results:
            values = [m[metric] for m in result.metrics_history if isinstance(m.get(metric), numbers.Real)]
            if filter_nan_and_inf:
                values = [v for v in values if v == v and abs(v) != float("inf")]
            if not values:
                continue
            if scope == "last":
                score = values[-1]
            elif scope == "all":
                score = pick(values)
            elif scope == "avg":
                score = sum(values) / len(values)
            else:
                n = 5 if scope == "last-5-avg" else 10
                score = sum(values[-n:]) / len(values[-n:])
            scored.append((score, result))
        if not scored:
            raise RuntimeError(f"no trial reported the metric {metric!r}")
        return pick(scored, key=lambda sr: sr[0])[1]

    def get_dataframe(self, filter_metric=None, filter_mode=None):
        try:
            import pandas
        except ImportError as e:
            raise ImportError("ResultGrid.get_dataframe needs pandas (pip install pandas)") from e
        rows = []
        for result in self._results:
            metrics = result.metrics_history
            if filter_metric and metrics:
                pick = max if filter_mode == "max" else min
                row = pick((m for m in metrics if filter_metric in m), key=lambda m: m[filter_metric], default={})
            else:
                row = result.metrics
            rows.append(dict(row, **{f"config/{k}": v for k, v in _flatten(result.config or {}).items()},
                             logdir=result.path))
        return pandas.DataFrame(rows)

    def __repr__(self):
        return f"ResultGrid<{len(self)} trials, {self.num_errors} errors, path={self.experiment_path}>"


def _flatten(config, prefix=""):
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def with_resources(trainable, resources):
    """The trainable with the resources each of its trials holds ({"cpu": 2, "gpu": 0.5,
    "memory": bytes, custom: amount}; Ray's lower-case names or the resource names)."""
    if not isinstance(resources, dict):
        raise TypeError("with_resources takes a dict of resources (Shoal has no PlacementGroupFactory here)")
    if isinstance(trainable, DataParallelTrainer):
        raise ValueError("with_resources does not apply to a trainer: its ScalingConfig says what it holds")
    clean = {}
    for name, amount in resources.items():
        key = {"cpu": "CPU", "gpu": "GPU"}.get(name, name)
        if isinstance(amount, bool) or not isinstance(amount, numbers.Real) or amount < 0:
            raise ValueError(f"with_resources: {name!r} must map to a non-negative number, got {amount!r}")
        clean[key] = float(amount)
    return _Wrapped(trainable, resources=clean)


def with_parameters(trainable, **kwargs):
    """The trainable called as trainable(config, **kwargs), the values put in the object store
    once (large datasets are not copied into every trial's definition)."""
    refs = {k: shoal.put(v) for k, v in kwargs.items()}
    return _Wrapped(trainable, parameters=refs)


class _Wrapped:
    def __init__(self, trainable, resources=None, parameters=None):
        inner = trainable
        self.resources = resources
        self.parameters = dict(parameters or {})
        if isinstance(trainable, _Wrapped):
            inner = trainable.trainable
            self.resources = resources or trainable.resources
            self.parameters = dict(trainable.parameters, **self.parameters)
        if not callable(inner):
            raise TypeError(f"a trainable must be a function or a trainer, got {type(inner).__name__}")
        self.trainable = inner
        self.__name__ = getattr(inner, "__name__", "trainable")

    def __call__(self, config):
        values = {k: shoal.get(v) for k, v in self.parameters.items()}
        return self.trainable(config, **values) if values else self.trainable(config)


class _TrainerTrial:
    """A trainer's run inside a trial actor: rank 0's reports become the trial's."""

    def __init__(self, trainer, storage_filesystem):
        self.trainer = trainer
        self.storage_filesystem = storage_filesystem
        self.__name__ = type(trainer).__name__

    def __call__(self, config):
        session = current_session()
        loop_config = dict(self.trainer.train_loop_config or {})
        loop_config.update(config.get("train_loop_config", {}))
        run_config = dataclasses.replace(self.trainer.run_config, name=None,
                                         storage_path=session.context.get_trial_dir(),
                                         storage_filesystem=self.storage_filesystem,
                                         failure_config=dataclasses.replace(self.trainer.run_config.failure_config,
                                                                            max_failures=0),
                                         stop=None, verbose=0)

        def forward(metrics, checkpoint):
            session.report(metrics, persisted=checkpoint)

        run = TrainingRun(self.trainer.train_loop_per_worker, loop_config, self.trainer.scaling_config, run_config,
                          None, backend=self.trainer._backend(),
                          resume_from=session.checkpoint or self.trainer.resume_from_checkpoint,
                          trial_info={"trial_id": session.context.get_trial_id(),
                                      "trial_name": session.context.get_trial_name()},
                          on_report=forward)
        run.name = session.context.get_experiment_name()
        session.on_stop = run.abort
        result = run.execute()
        if result.error is not None and not run.aborted:
            raise result.error


class Tuner:
    """Runs `trainable` (a function of its config that reports with shoal.tune.report /
    shoal.train.report, or a DataParallelTrainer) once per configuration of `param_space`."""

    def __init__(self, trainable=None, *, param_space: Optional[Dict] = None, tune_config: Optional[TuneConfig] = None,
                 run_config: Optional[RunConfig] = None, _tuner_kwargs=None):
        if trainable is None:
            raise ValueError("Tuner needs a trainable (a function or a trainer)")
        if isinstance(trainable, type):
            raise TypeError(f"class trainables ({trainable.__name__}) are not supported by Shoal: use a function "
                            "that reports with shoal.tune.report, or a trainer")
        if isinstance(trainable, str):
            raise TypeError("registered trainable names are not supported by Shoal: pass the function itself")
        if not (callable(trainable) or isinstance(trainable, DataParallelTrainer)):
            raise TypeError(f"a trainable must be a function or a trainer, got {type(trainable).__name__}")
        if param_space is not None and not isinstance(param_space, dict):
            raise TypeError(f"param_space must be a dict, got {type(param_space).__name__}")
        if tune_config is not None and not isinstance(tune_config, TuneConfig):
            raise TypeError(f"tune_config must be a shoal.tune.TuneConfig, got {type(tune_config).__name__}")
        if run_config is not None and not isinstance(run_config, RunConfig):
            raise TypeError(f"run_config must be a shoal.tune.RunConfig, got {type(run_config).__name__}")
        if _tuner_kwargs:
            raise ValueError("_tuner_kwargs is not supported by Shoal")
        if isinstance(trainable, DataParallelTrainer):
            extra = set(param_space or {}) - {"train_loop_config"}
            if extra:
                raise ValueError(f"param_space for a trainer may tune only 'train_loop_config', got {sorted(extra)}")
        self.trainable = trainable
        self.param_space = param_space or {}
        self.tune_config = tune_config or TuneConfig()
        if run_config is None and isinstance(trainable, DataParallelTrainer):
            run_config = trainable.run_config
        self.run_config = run_config or RunConfig()

    def fit(self) -> ResultGrid:
        from shoal._private import runtime
        runtime.connect()  # Ray's implicit init
        return _Experiment(self).run()


class _Experiment:
    def __init__(self, tuner):
        self.tuner = tuner
        tc, rc = tuner.tune_config, tuner.run_config
        self.tc, self.rc = tc, rc
        self.scheduler = tc.scheduler or _schedulers.FIFOScheduler()
        self.scheduler.set_search_properties(tc.metric, tc.mode)
        trainable = tuner.trainable
        self.is_trainer = isinstance(trainable, DataParallelTrainer)
        name = (getattr(trainable, "__name__", None) or type(trainable).__name__) if not self.is_trainer \
            else type(trainable).__name__
        self.trainable_name = name if name != "<lambda>" else "lambda"
        self.fs, root = _storage.resolve(rc.storage_path or default_storage_path(), rc.storage_filesystem)
        self.name = rc.name or _storage.claim_fresh_dir(
            self.fs, root, f"{self.trainable_name}_{datetime.datetime.now().strftime('%Y-%m-%d_%H-%M-%S')}")
        self.exp_dir = _storage.join(root, self.name)
        self.verbose = 1 if rc.verbose is None else rc.verbose
        self.required = [k for k in self.scheduler.required_keys() if k] + ([tc.metric] if tc.metric else [])
        self.max_failures = rc.failure_config.max_failures
        resources = getattr(trainable, "resources", None) if isinstance(trainable, _Wrapped) else None
        if self.is_trainer:
            self.actor_resources = {}
            self.function = _TrainerTrial(trainable, rc.storage_filesystem)
        else:
            self.actor_resources = resources if resources is not None else {"CPU": 1.0}
            self.function = trainable

    def run(self):
        _storage.check_writable(self.fs, self.exp_dir)
        search = self.tc.search_alg or BasicVariantGenerator()
        configs = search.variants(self.tuner.param_space, self.tc.num_samples)
        experiment_id = uuid.uuid4().hex[:5]
        self.trials = [Trial(experiment_id, i, config, self.trainable_name) for i, config in enumerate(configs)]
        for trial in self.trials:
            if self.tc.trial_name_creator is not None:
                trial.custom_name = str(self.tc.trial_name_creator(trial))
            dirname = str(self.tc.trial_dirname_creator(trial)) if self.tc.trial_dirname_creator else trial.trial_name
            trial.path = _storage.join(self.exp_dir, dirname)
            trial.book = CheckpointBook(self.fs, trial.path, self.rc.checkpoint_config)
            self.scheduler.on_trial_add(trial.trial_id)
        log(f"{len(self.trials)} trial(s) of {self.trainable_name} in {_storage.uri(self.fs, self.exp_dir)}; "
            f"scheduler {self.scheduler.describe()}")
        queue = collections.deque(self.trials)
        polls = {}
        limit = self.tc.max_concurrent_trials or len(self.trials)
        if search.max_concurrent:
            limit = min(limit, search.max_concurrent)
        started = time.monotonic()
        try:
            self._loop(queue, polls, limit, started)
        except _FailFast:
            pass
        except BaseException:
            for trial in self.trials:
                if trial.status == RUNNING:
                    self._end(trial, TERMINATED, "the experiment was ended")
            raise
        grid = ResultGrid([self._result(t) for t in self.trials], _storage.uri(self.fs, self.exp_dir),
                          self.tc.metric or self.scheduler.metric, self.tc.mode or self.scheduler.mode)
        self._summary()
        return grid

    def _loop(self, queue, polls, limit, started):
        while queue or polls:
            while queue and len(polls) < limit:
                trial = queue.popleft()
                self._start(trial)
                polls[trial.actor.poll.remote(POLL_S)] = trial
            if self.tc.time_budget_s is not None and time.monotonic() - started > self.tc.time_budget_s:
                log(f"time budget of {self.tc.time_budget_s} s is spent: ending {len(polls)} running trial(s); "
                    f"{len(queue)} never started")
                for trial in list(polls.values()):
                    self._end(trial, TERMINATED, "time budget spent")
                polls.clear()
                break
            ready, _ = shoal.wait(list(polls), num_returns=1, timeout=POLL_S * 5)
            for ref in ready:
                trial = polls.pop(ref)
                again = self._take(trial, ref)
                if again == "restart":
                    queue.appendleft(trial)
                elif again:
                    polls[trial.actor.poll.remote(POLL_S)] = trial

    def _start(self, trial):
        trial.actor = TrainWorker.options(**actor_options(self.actor_resources)).remote()
        info = {"world_rank": 0, "world_size": 1, "local_rank": 0, "local_world_size": 1, "node_rank": 0,
                "trial_id": trial.trial_id, "trial_name": getattr(trial, "custom_name", trial.trial_name),
                "trial_dir": _storage.uri(self.fs, trial.path) if self.fs is not None else trial.path,
                "experiment_name": self.name, "resources": dict(self.actor_resources)}
        restore = trial.checkpoint
        trial.start_ref = trial.actor.start.remote(self.function, trial.config, info, self.fs, trial.path, restore,
                                                   trial.book.next_index(trial.book.first_free_index()))
        trial.status = RUNNING
        trial.started_at = trial.last_report_at = time.time()
        if self.verbose:
            log(f"Trial {trial} started with config {json.dumps(trial.config, default=repr)}"
                + (f", restored from {restore}" if restore is not None else ""))

    def _take(self, trial, ref):
        """Handles one poll; answers True to poll again, "restart" to start the trial again,
        False when it has ended."""
        try:
            out = shoal.get(ref)
        except (exceptions.ShoalError, OSError) as e:
            return self._failed(trial, self._start_error(trial) or e)
        for report in out["reports"]:
            result = self._result_of(trial, report)
            missing = [k for k in self.required if k not in result]
            if missing:
                scheduler = type(self.scheduler).__name__
                raise ValueError(f"Trial {trial} returned a result which did not include the metric(s) "
                                 f"{', '.join(repr(m) for m in missing)} that {scheduler}/TuneConfig expects; it "
                                 f"reported: {sorted(k for k in report['metrics'])}. Make sure your calls to "
                                 "shoal.tune.report() include the metric.")
            trial.results.append(result)
            trial.last_result = result
            self._checkpoint(trial, report)
            if self.verbose >= 2:
                log(f"Trial {trial} result {trial.results[-1]['training_iteration']}: {_short(report['metrics'])}")
            if should_stop(self.rc.stop, trial.trial_id, result):
                self._end(trial, TERMINATED, "its stop condition was met")
                return False
            if self.scheduler.on_trial_result(trial.trial_id, result) == _schedulers.STOP:
                reason = f"stopped by {type(self.scheduler).__name__}"
                rung = getattr(self.scheduler, "stopped_at", {}).get(trial.trial_id)
                if rung is not None:
                    attr = getattr(self.scheduler, "time_attr", "training_iteration")
                    if rung == self.scheduler.max_t:
                        reason = f"reached max_t ({attr}={result.get(attr)})"
                    else:
                        reason += f" at {attr}={result.get(attr)} (rung {rung})"
                self._end(trial, TERMINATED, reason)
                return False
        if out["error"] is not None:
            return self._failed(trial, out["error"])
        if out["done"]:
            self._end(trial, TERMINATED, "finished")
            return False
        return True

    def _start_error(self, trial):
        """Why the trial's start call failed (its function or config could not be unpickled
        there, ...), or None: then the poll's own error says what happened."""
        try:
            shoal.get(trial.start_ref, timeout=5)
        except Exception as e:  # noqa: BLE001 - any failure of the start is the trial's
            return e
        return None

    def _result_of(self, trial, report):
        now = report.get("time", time.time())
        result = dict(report["metrics"])
        result.update(training_iteration=len(trial.results) + 1, trial_id=trial.trial_id,
                      time_this_iter_s=now - trial.last_report_at, time_total_s=now - trial.started_at,
                      timestamp=int(now))
        trial.last_report_at = now
        return result

    def _checkpoint(self, trial, report):
        if report.get("checkpoint_index") is not None:
            trial.book.register(report["checkpoint_index"], report["metrics"])
            trial.checkpoint = trial.book.latest()
        elif report.get("checkpoint_path"):
            trial.checkpoint = Checkpoint(report["checkpoint_path"], self.fs)

    def _failed(self, trial, error):
        trial.failures += 1
        self._stop_actor(trial)
        if self.max_failures == -1 or trial.failures <= self.max_failures:
            log(f"Trial {trial} failed ({type(error).__name__}: {error}); restoring it "
                + (f"from {trial.checkpoint}" if trial.checkpoint else "from the start")
                + f" (failure {trial.failures})")
            trial.status = PENDING
            return "restart"
        trial.error = error
        self._end(trial, ERROR, f"failed: {type(error).__name__}: {error}")
        fail_fast = self.rc.failure_config.fail_fast
        if fail_fast:
            for other in self.trials:
                if other.status == RUNNING:
                    self._end(other, TERMINATED, f"fail_fast: trial {trial} failed")
            if fail_fast == "raise":
                raise TuneError(f"Trial {trial} failed and fail_fast='raise'") from error
            raise _FailFast()
        return False

    def _stop_actor(self, trial):
        if trial.actor is None:
            return
        try:
            shoal.get(trial.actor.stop.remote(), timeout=30)
        except Exception:  # noqa: BLE001 - a dead or stuck actor is killed all the same
            pass
        try:
            shoal.kill(trial.actor)
        except Exception:  # noqa: BLE001 - already dead
            pass
        trial.actor = None

    def _end(self, trial, status, reason):
        self._stop_actor(trial)
        trial.status = status
        trial.stop_reason = reason
        self.scheduler.on_trial_remove(trial.trial_id)
        lines = "".join(json.dumps(r, default=repr) + "\n" for r in trial.results)
        try:
            _storage.write_text(self.fs, _storage.join(trial.path, "result.json"), lines)
        except Exception as e:  # noqa: BLE001 - the results matter more than their log
            log(f"could not write the results of {trial} under {trial.path}: {e}")
        if self.verbose:
            last = trial.last_result.get("training_iteration", 0)
            log(f"Trial {trial} {status} after {last} result(s): {reason}")

    def _result(self, trial):
        return Result(metrics=dict(trial.last_result), checkpoint=trial.checkpoint, error=trial.error,
                      path=_storage.uri(self.fs, trial.path), filesystem=self.fs, best_checkpoints=trial.book.best(),
                      metrics_history=list(trial.results), config=trial.config)

    def _summary(self):
        if not self.verbose:
            return
        metric = self.tc.metric or self.scheduler.metric
        lines = [f"{'trial':<32} {'status':<10} {'iter':>5} {metric or '':>12}  config"]
        for t in self.trials:
            value = t.last_result.get(metric, "") if metric else ""
            value = f"{value:.6g}" if isinstance(value, float) else str(value)
            lines.append(f"{t.trial_name:<32} {t.status:<10} {t.last_result.get('training_iteration', 0):>5} "
                         f"{value:>12}  {json.dumps(t.config, default=repr)}")
        log("Trials:\n" + "\n".join(lines))


class _FailFast(Exception):
    pass


def _short(metrics):
    text = json.dumps(metrics, default=repr)
    return text if len(text) < 300 else text[:297] + "..."


__all__ = ["Tuner", "TuneConfig", "ResultGrid", "TuneError", "with_resources", "with_parameters"]
