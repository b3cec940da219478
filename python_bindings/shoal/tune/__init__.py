"""Hyperparameter search under Ray Tune's names (ray.tune).

    from shoal import tune
    from shoal.tune.schedulers import ASHAScheduler

    def objective(config):
        for step in range(20):
            tune.report({"score": train_a_bit(config)})

    results = tune.Tuner(objective,
                         param_space={"lr": tune.loguniform(1e-4, 1e-1), "batch": tune.choice([32, 64])},
                         tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=8,
                                                     scheduler=ASHAScheduler(max_t=20, grace_period=1,
                                                                             reduction_factor=2))).fit()
    print(results.get_best_result().config)

A trainer (shoal.train's DataParallelTrainer, TorchTrainer) is a trainable too: param_space
{"train_loop_config": {...}}, each trial its own training run with its own placement group.
"""
from shoal.train._checkpoint import Checkpoint
from shoal.train._config import CheckpointConfig, FailureConfig, RunConfig
from shoal.train._session import get_checkpoint, get_context, report
from shoal.train.trainer import Result
from shoal.tune import schedulers, search
from shoal.tune.search import (choice, grid_search, lograndint, loguniform, qloguniform, qrandint, qrandn, quniform,
                               randint, randn, sample_from, uniform)
from shoal.tune.tuner import ResultGrid, TuneConfig, TuneError, Tuner, with_parameters, with_resources

__all__ = ["Tuner", "TuneConfig", "ResultGrid", "TuneError", "RunConfig", "CheckpointConfig", "FailureConfig",
           "Checkpoint", "Result", "report", "get_checkpoint", "get_context", "with_resources", "with_parameters",
           "choice", "uniform", "quniform", "loguniform", "qloguniform", "randint", "qrandint", "lograndint", "randn",
           "qrandn", "sample_from", "grid_search", "schedulers", "search"]
