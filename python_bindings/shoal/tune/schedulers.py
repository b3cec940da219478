"""Trial schedulers (Ray's ray.tune.schedulers): FIFOScheduler runs every trial to its end;
ASHAScheduler stops the trials that fall behind at each rung (asynchronous successive halving,
Li et al., "A System for Massively Parallel Hyperparameter Tuning", 2020)."""
import math
import numbers

import numpy as np

CONTINUE = "CONTINUE"
STOP = "STOP"


class TrialScheduler:
    CONTINUE = CONTINUE
    STOP = STOP
    metric = None
    mode = None

    def set_search_properties(self, metric, mode):
        """Takes TuneConfig's metric and mode where the scheduler was given none; a scheduler
        that has its own and is given different ones refuses."""
        for name, mine, given in (("metric", self.metric, metric), ("mode", self.mode, mode)):
            if mine is not None and given is not None and mine != given:
                raise ValueError(f"{type(self).__name__}({name}={mine!r}) differs from TuneConfig({name}={given!r}): "
                                 "set it in one place")
        self.metric = self.metric or metric
        self.mode = self.mode or mode

    def required_keys(self):
        return []

    def on_trial_add(self, trial_id):
        pass

    def on_trial_result(self, trial_id, result):
        return CONTINUE

    def on_trial_remove(self, trial_id):
        pass

    def describe(self):
        return type(self).__name__


class FIFOScheduler(TrialScheduler):
    """Runs trials in the order they were made, each to its end."""

    def __init__(self):
        pass


class AsyncHyperBandScheduler(TrialScheduler):
    """Asynchronous successive halving with one bracket.

    Rungs sit at grace_period * reduction_factor**k below max_t. When a trial first reports a
    `time_attr` at or past a rung it has not reached before, its `metric` is compared with the
    values recorded there by the trials that reached the rung earlier: below their
    (1 - 1/reduction_factor) quantile (for mode "max"; above the 1/reduction_factor quantile for
    "min") the trial is stopped; either way its value is recorded at the rung. So about one
    trial in reduction_factor goes on past each rung. A trial that reaches max_t is stopped
    (it has finished)."""

    def __init__(self, time_attr="training_iteration", metric=None, mode=None, max_t=100, grace_period=1,
                 reduction_factor=4, brackets=1, stop_last_trials=True):
        for name, value in (("max_t", max_t), ("grace_period", grace_period), ("reduction_factor", reduction_factor)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or value <= 0:
                raise ValueError(f"{type(self).__name__}({name}={value!r}): must be a number above 0")
        if reduction_factor <= 1:
            raise ValueError(f"{type(self).__name__}(reduction_factor={reduction_factor!r}): must be above 1")
        if grace_period > max_t:
            raise ValueError(f"{type(self).__name__}: grace_period ({grace_period}) must be at most max_t ({max_t})")
        if brackets != 1:
            raise ValueError(f"{type(self).__name__}(brackets={brackets!r}) is not supported by Shoal: one bracket only")
        if mode not in (None, "min", "max"):
            raise ValueError(f"{type(self).__name__}(mode={mode!r}): must be 'min' or 'max'")
        if not isinstance(time_attr, str):
            raise TypeError("time_attr must be the name of a reported metric")
        self.time_attr = time_attr
        self.metric = metric
        self.mode = mode
        self.max_t = max_t
        self.grace_period = grace_period
        self.reduction_factor = reduction_factor
        self.stop_last_trials = stop_last_trials
        milestones = []
        k = 0
        while grace_period * reduction_factor ** k < max_t:
            milestones.append(grace_period * reduction_factor ** k)
            k += 1
        # Highest first: a report is measured at the highest rung it has newly reached.
        self.rungs = [(m, {}) for m in reversed(milestones)]
        self.stopped_at = {}  # trial id -> the rung (or max_t) where it was stopped
        # (trial id, time, score, cutoff, action) of every result measured at a rung, in order.
        self.decisions = []

    @property
    def milestones(self):
        return sorted(m for m, _ in self.rungs)

    def required_keys(self):
        return [self.time_attr, self.metric]

    def _cutoff(self, recorded):
        if not recorded:
            return None
        return float(np.nanpercentile(list(recorded.values()), (1 - 1 / self.reduction_factor) * 100))

    def on_trial_result(self, trial_id, result):
        if self.metric is None or self.mode is None:
            raise ValueError(f"{type(self).__name__} needs a metric and a mode (in it or in TuneConfig)")
        t = result[self.time_attr]
        if t >= self.max_t and self.stop_last_trials:
            self.stopped_at[trial_id] = self.max_t
            return STOP
        value = result[self.metric]
        score = value if self.mode == "max" else -value
        for milestone, recorded in self.rungs:
            if t < milestone or trial_id in recorded:
                continue
            cutoff = self._cutoff(recorded)
            action = STOP if cutoff is not None and score < cutoff else CONTINUE
            if not (isinstance(score, float) and math.isnan(score)):
                recorded[trial_id] = score
            self.decisions.append((trial_id, t, score, cutoff, action))
            if action == STOP:
                self.stopped_at[trial_id] = milestone
            return action
        return CONTINUE

    def describe(self):
        return (f"{type(self).__name__}(time_attr={self.time_attr!r}, max_t={self.max_t}, grace_period="
                f"{self.grace_period}, reduction_factor={self.reduction_factor}, rungs={self.milestones})")


ASHAScheduler = AsyncHyperBandScheduler

__all__ = ["TrialScheduler", "FIFOScheduler", "AsyncHyperBandScheduler", "ASHAScheduler"]
