"""Data-parallel training and hyperparameter search, written the way a Ray Train / Tune user
writes them (only the imports differ):

    PYTHONPATH=build/python python3 examples/python/train_and_tune.py [storage_path]

A linear model is fitted by two workers, each on its half of the data, its gradients summed
with an allreduce; rank 0 checkpoints every epoch into storage_path (a local directory by
default; an s3:// URI works too). Then ASHA searches the learning rate over 8 trials and stops
the poor ones early.
"""
import os
import sys
import tempfile

import numpy as np

import shoal as ray
from shoal import train, tune
from shoal.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from shoal.train.data_parallel_trainer import DataParallelTrainer
from shoal.tune.schedulers import ASHAScheduler
import shoal.util.collective as col

W_TRUE = np.array([2.0, -3.0, 0.5])


def train_func(config):
    ctx = train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    group = f"example-{ctx.get_trial_id() or ctx.get_experiment_name()}"
    col.init_collective_group(world, rank, backend="gloo", group_name=group)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 3))
    y = x @ W_TRUE
    x, y = x[rank::world], y[rank::world]  # this worker's shard
    w, start = np.zeros(3), 0
    if train.get_checkpoint():
        with train.get_checkpoint().as_directory() as d:
            state = np.load(os.path.join(d, "state.npz"))
            w, start = state["w"], int(state["epoch"]) + 1
    for epoch in range(start, config["epochs"]):
        err = x @ w - y
        grad = 2 * x.T @ err / 512
        col.allreduce(grad, group_name=group)  # the same summed gradient on every rank
        w -= config["lr"] * grad
        loss = np.array([float((err ** 2).sum()) / 512])
        col.allreduce(loss, group_name=group)
        with tempfile.TemporaryDirectory() as d:
            checkpoint = None
            if rank == 0:
                np.savez(os.path.join(d, "state.npz"), w=w, epoch=epoch)
                checkpoint = Checkpoint.from_directory(d)
            train.report({"epoch": epoch, "loss": float(loss[0])}, checkpoint=checkpoint)
    col.destroy_collective_group(group)


def main():
    storage = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="shoal-runs-")
    ray.init()
    trainer = DataParallelTrainer(
        train_func, train_loop_config={"lr": 0.3, "epochs": 30},
        scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(name="linear", storage_path=storage, verbose=0,
                             failure_config=FailureConfig(max_failures=2),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)))
    result = trainer.fit()
    with result.checkpoint.as_directory() as d:
        w = np.load(os.path.join(d, "state.npz"))["w"]
    print(f"trained: loss {result.metrics['loss']:.2e}, weights {np.round(w, 4)} (true {W_TRUE}), "
          f"checkpoint {result.checkpoint.path}")

    tuner = tune.Tuner(
        trainer, param_space={"train_loop_config": {"lr": tune.grid_search([0.3, 0.2, 0.4, 0.1, 0.03, 0.01,
                                                                           0.003, 0.001])}},
        tune_config=tune.TuneConfig(metric="loss", mode="min", max_concurrent_trials=2,
                                    scheduler=ASHAScheduler(max_t=30, grace_period=2, reduction_factor=3)),
        run_config=RunConfig(name="lr-search", storage_path=storage, verbose=1))
    results = tuner.fit()
    best = results.get_best_result()
    stopped = sorted(r.metrics["training_iteration"] for r in results)
    print(f"tuned: best lr {best.config['train_loop_config']['lr']} (loss {best.metrics['loss']:.2e}); "
          f"iterations per trial {stopped}")
    ray.shutdown()


if __name__ == "__main__":
    main()
