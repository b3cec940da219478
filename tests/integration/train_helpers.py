"""Training functions shared by the shoal.train and shoal.tune tests (importable by workers: the
test directory is on their path)."""
import json
import os
import tempfile
import time

import numpy as np

W_TRUE = np.array([2.0, -3.0, 0.5, 1.25])
B_TRUE = 0.75


def dataset(rank, world, n=256, seed=7):
    """A rank's shard of a fixed noiseless regression problem."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(W_TRUE)))
    y = x @ W_TRUE + B_TRUE
    return x[rank::world], y[rank::world], n


def linreg_loop(config):
    """Full-batch gradient descent on the data-parallel shards; gradients are summed with an
    allreduce (host backend), so every rank holds the same weights. Rank 0 checkpoints every
    epoch; each rank records its gradients and its node in config["probe_dir"]."""
    import shoal
    import shoal.train as train
    import shoal.util.collective as col

    ctx = train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    probe = config["probe_dir"]
    with open(os.path.join(probe, f"node_rank{rank}_{os.getpid()}.json"), "w") as f:
        json.dump({"node_id": shoal.get_runtime_context().get_node_id(), "pid": os.getpid(), "rank": rank,
                   "local_rank": ctx.get_local_rank(), "node_rank": ctx.get_node_rank(),
                   "world_size": world, "experiment": ctx.get_experiment_name()}, f)
    # Trials of one Tune experiment share its name and may run at once: the trial name (set under
    # Tune) keeps their groups apart.
    group = "linreg-" + (ctx.get_trial_name() or ctx.get_experiment_name())
    col.init_collective_group(world, rank, backend="gloo", group_name=group)
    x, y, n = dataset(rank, world)
    w, b, start = np.zeros(x.shape[1]), 0.0, 0
    checkpoint = train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = np.load(os.path.join(d, "state.npz"))
            w, b, start = state["w"], float(state["b"]), int(state["epoch"]) + 1
    for epoch in range(start, config["epochs"]):
        err = x @ w + b - y
        grad = np.concatenate([2.0 * x.T @ err / n, [2.0 * err.sum() / n]])
        col.allreduce(grad, group_name=group)
        np.save(os.path.join(probe, f"grad_rank{rank}_epoch{epoch}_{os.getpid()}.npy"), grad)
        w = w - config["lr"] * grad[:-1]
        b = b - config["lr"] * grad[-1]
        loss = np.array([float((err ** 2).sum())])
        col.allreduce(loss, group_name=group)
        time.sleep(config.get("epoch_sleep", 0))
        metrics = {"epoch": epoch, "loss": float(loss[0]) / n, "w": w.tolist(), "b": float(b)}
        if rank == 0:
            with tempfile.TemporaryDirectory() as d:
                np.savez(os.path.join(d, "state.npz"), w=w, b=b, epoch=epoch)
                train.report(metrics, checkpoint=train.Checkpoint.from_directory(d))
        else:
            train.report(metrics)
    col.destroy_collective_group(group)


def probes(probe_dir, prefix):
    return sorted(p for p in os.listdir(probe_dir) if p.startswith(prefix))
