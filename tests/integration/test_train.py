"""shoal.train end to end: a data-parallel numpy model (linear regression over the host
collectives) on a three-node cluster trains to the known answer with equal gradients on every
rank and checkpoints in storage; a raylet killed with kill -9 mid-run is survived by restoring
from the latest checkpoint to the same final weights (and is fatal with max_failures=0);
checkpoints go to and come back from an S3 server started on loopback; bad input is refused
clearly."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import cloudpickle
import numpy as np
import pytest

import train_helpers
from conftest import PYTHON_DIR, assert_resources_back, free_port, wait_until
from train_helpers import B_TRUE, W_TRUE, linreg_loop, probes

# Workers cannot import the test directory's modules: the training functions travel by value.
cloudpickle.register_pickle_by_value(train_helpers)

sys.path.insert(0, PYTHON_DIR)

import shoal  # noqa: E402
import shoal.train as train  # noqa: E402
from shoal.train import (Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig,  # noqa: E402
                         TrainingFailedError)
from shoal.train.data_parallel_trainer import DataParallelTrainer  # noqa: E402


def linreg_trainer(tmp_path, name, epochs=40, strategy="SPREAD", max_failures=0, epoch_sleep=0.0, num_to_keep=None,
                   storage_path=None, **run):
    probe = tmp_path / f"probe-{name}"
    probe.mkdir()
    return DataParallelTrainer(
        linreg_loop, train_loop_config={"epochs": epochs, "lr": 0.25, "probe_dir": str(probe),
                                        "epoch_sleep": epoch_sleep},
        scaling_config=ScalingConfig(num_workers=2, placement_strategy=strategy),
        run_config=RunConfig(name=name, storage_path=storage_path or str(tmp_path / "runs"),
                             failure_config=FailureConfig(max_failures=max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=num_to_keep), **run)), probe


def test_linear_regression_trains_to_the_known_answer(driver, tmp_path):
    trainer, probe = linreg_trainer(tmp_path, "linreg", num_to_keep=2)
    result = trainer.fit()
    assert result.error is None
    np.testing.assert_allclose(result.metrics["w"], W_TRUE, atol=1e-3)
    assert abs(result.metrics["b"] - B_TRUE) < 1e-3
    assert [m["epoch"] for m in result.metrics_history] == list(range(40))
    assert result.metrics_history[-1]["loss"] < result.metrics_history[0]["loss"] / 1000
    # The allreduced gradients are the same on both ranks at every epoch.
    for epoch in range(40):
        [g0], [g1] = (probes(probe, f"grad_rank{r}_epoch{epoch}_") for r in (0, 1))
        assert np.array_equal(np.load(probe / g0), np.load(probe / g1)), epoch
    # Two workers on two nodes (SPREAD), each first on its node.
    nodes = [json.loads((probe / p).read_text()) for p in probes(probe, "node_rank")]
    assert sorted(n["rank"] for n in nodes) == [0, 1]
    assert len({n["node_id"] for n in nodes}) == 2
    assert {(n["local_rank"], n["world_size"], n["experiment"]) for n in nodes} == {(0, 2, "linreg")}
    assert sorted(n["node_rank"] for n in nodes) == [0, 1]
    # Checkpoints in storage_path/<name>: the two latest kept (num_to_keep=2), each loadable.
    run_dir = tmp_path / "runs" / "linreg"
    assert result.path == str(run_dir)
    assert sorted(p.name for p in run_dir.glob("checkpoint_*")) == ["checkpoint_000038", "checkpoint_000039"]
    assert result.checkpoint.path == str(run_dir / "checkpoint_000039")
    with result.checkpoint.as_directory() as d:
        state = np.load(os.path.join(d, "state.npz"))
        assert int(state["epoch"]) == 39
        np.testing.assert_array_equal(state["w"], result.metrics["w"])
    assert [c.path for c, _ in result.best_checkpoints] == [str(run_dir / "checkpoint_000038"),
                                                            str(run_dir / "checkpoint_000039")]
    assert len((run_dir / "result.json").read_text().splitlines()) == 40
    assert_resources_back(driver)


def _node_of_rank(cluster, probe, rank):
    """The alive node entry of `shoal status` where `rank` runs now (its latest probe)."""
    latest = max((probe / p for p in probes(probe, f"node_rank{rank}_")), key=lambda p: p.stat().st_mtime)
    node_id = json.loads(latest.read_text())["node_id"]
    return next(n for n in cluster.alive_nodes() if n["node_id"] == node_id)


def _fit_in_thread(trainer):
    outcome = {}

    def run():
        try:
            outcome["result"] = trainer.fit()
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _kill_a_worker_node_mid_run(cluster, tmp_path, name, max_failures):
    """Starts a run on two nodes, waits for checkpoint 3, kills -9 the raylet of the worker
    that is not on the head; answers (outcome, probe dir, killed node id)."""
    trainer, probe = linreg_trainer(tmp_path, name, epochs=30, max_failures=max_failures, epoch_sleep=0.15)
    thread, outcome = _fit_in_thread(trainer)
    wait_until(lambda: (tmp_path / "runs" / name / "checkpoint_000003").exists() or outcome, 60,
               what="checkpoint 3")
    assert not outcome, outcome
    head = next(n for n in cluster.alive_nodes() if n["is_head"])
    victim = next(n for n in (_node_of_rank(cluster, probe, r) for r in (0, 1)) if n["node_id"] != head["node_id"])
    os.kill(victim["raylet_pid"], signal.SIGKILL)
    thread.join(180)
    assert not thread.is_alive(), "fit() did not return"
    return outcome, probe, victim["node_id"]


def test_killed_raylet_mid_run_resumes_from_the_checkpoint_to_the_same_weights(cluster, tmp_path, capfd):
    cluster.start_head("--num-cpus", 1, "--num-gpus", 0)
    cluster.start_worker("--num-cpus", 1, "--num-gpus", 0)
    cluster.start_worker("--num-cpus", 1, "--num-gpus", 0)
    wait_until(lambda: len(cluster.alive_nodes()) == 3, 20, what="3 alive nodes")
    shoal.init(address=cluster.address)
    try:
        reference, _ = linreg_trainer(tmp_path, "reference", epochs=30)
        expected = reference.fit().metrics
        outcome, probe, killed = _kill_a_worker_node_mid_run(cluster, tmp_path, "survivor", max_failures=2)
        assert "error" not in outcome, outcome.get("error")
        result = outcome["result"]
        # Deterministic model: the restored run ends with exactly the weights of the clean one.
        assert result.metrics["w"] == expected["w"] and result.metrics["b"] == expected["b"]
        assert [m["epoch"] for m in result.metrics_history] == list(range(30))
        # The second attempt started after a checkpoint, not from epoch 0, and on the nodes alive.
        rerun = [int(p.split("_epoch")[1].split("_")[0]) for p in probes(probe, "grad_rank0_")]
        assert len(rerun) > 30 and min(e for e in rerun if rerun.count(e) > 1) >= 3, sorted(rerun)
        assert all(_node_of_rank(cluster, probe, r)["node_id"] != killed for r in (0, 1))
        err = capfd.readouterr().err
        assert "has failed." in err and "Worker " in err, err[-3000:]
        assert "Restored on 127.0.0.1 from checkpoint: Checkpoint(filesystem=local, path=" in err, err[-3000:]
        assert_resources_back(cluster)

        # Now two nodes are left; with max_failures=0 the next loss ends the run with its cause.
        outcome, _, _ = _kill_a_worker_node_mid_run(cluster, tmp_path, "fragile", max_failures=0)
        error = outcome.get("error")
        assert isinstance(error, TrainingFailedError), outcome
        assert "max_failures=0" in str(error)
        assert isinstance(error.__cause__, shoal.exceptions.ShoalError), repr(error.__cause__)
    finally:
        shoal.shutdown()
