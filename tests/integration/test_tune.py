"""shoal.tune: the ASHA rung logic against a hand-computed example, search spaces (seeded
sampling, grid enumeration), and on a three-node cluster: ASHA over 8 trials stopping the worst
at the rungs and finding the best config, a failing trial reported while the others go on, a
trainer as trainable (a training run with its own placement group per trial), and bad input."""
import math
import sys
import time

import cloudpickle
import numpy as np
import pytest

import train_helpers
from conftest import PYTHON_DIR, assert_resources_back

# Workers cannot import the test directory's modules: trainables travel by value.
cloudpickle.register_pickle_by_value(train_helpers)
cloudpickle.register_pickle_by_value(sys.modules[__name__])
sys.path.insert(0, PYTHON_DIR)

import shoal  # noqa: E402
from shoal import tune  # noqa: E402
from shoal.train import RunConfig, ScalingConfig  # noqa: E402
from shoal.train.data_parallel_trainer import DataParallelTrainer  # noqa: E402
from shoal.tune.schedulers import ASHAScheduler, FIFOScheduler  # noqa: E402


# --- units: no cluster ------------------------------------------------------------------------


def test_asha_rungs_and_cutoffs_match_a_hand_computed_example():
    asha = ASHAScheduler(metric="acc", mode="max", max_t=9, grace_period=1, reduction_factor=3)
    assert asha.milestones == [1, 3]  # 1 * 3**k below max_t
    steps = [
        # trial, time, acc, expected action, expected cutoff (None: nothing recorded at the rung yet)
        ("A", 1, 0.5, "CONTINUE", None),
        ("B", 1, 0.2, "STOP", 0.5),                  # percentile([.5], 66.7) = .5
        ("C", 1, 0.9, "CONTINUE", 0.4),              # [.2, .5]: .2 + (.5 - .2) * 2/3
        ("D", 1, 0.45, "STOP", 0.5 + 0.4 / 3),       # [.2, .5, .9]: at 4/3 -> .5 + (.9 - .5) / 3
        ("A", 2, 0.6, "CONTINUE", "no rung"),        # past rung 1 already, rung 3 not reached
        ("A", 3, 0.7, "CONTINUE", None),
        ("C", 4, 0.65, "STOP", 0.7),                 # first result at or past rung 3
        ("A", 9, 0.99, "STOP", "max_t"),             # finished
    ]
    for trial, t, acc, action, cutoff in steps:
        before = len(asha.decisions)
        assert asha.on_trial_result(trial, {"training_iteration": t, "acc": acc}) == action, (trial, t)
        if cutoff in ("no rung", "max_t"):
            assert len(asha.decisions) == before
        else:
            got = asha.decisions[-1][3]
            assert (got is None and cutoff is None) or math.isclose(got, cutoff), (trial, t, got, cutoff)
    assert asha.stopped_at == {"B": 1, "D": 1, "C": 3, "A": 9}

    # mode "min" mirrors it: the highest losses are stopped.
    asha = ASHAScheduler(metric="loss", mode="min", max_t=9, grace_period=1, reduction_factor=3)
    assert [asha.on_trial_result(t, {"training_iteration": 1, "loss": v})
            for t, v in (("A", 0.5), ("B", 0.8), ("C", 0.1))] == ["CONTINUE", "STOP", "CONTINUE"]


def test_asha_milestones_and_bad_arguments():
    assert ASHAScheduler(max_t=100, grace_period=1, reduction_factor=4).milestones == [1, 4, 16, 64]
    assert ASHAScheduler(max_t=20, grace_period=1, reduction_factor=2).milestones == [1, 2, 4, 8, 16]
    assert ASHAScheduler(max_t=27, grace_period=3, reduction_factor=3).milestones == [3, 9]
    for kwargs, match in (({"reduction_factor": 1}, "reduction_factor"), ({"grace_period": 0}, "grace_period"),
                          ({"max_t": 5, "grace_period": 10}, "grace_period"), ({"brackets": 3}, "brackets"),
                          ({"mode": "best"}, "mode")):
        with pytest.raises(ValueError, match=match):
            ASHAScheduler(**kwargs)
    with pytest.raises(ValueError, match="metric and a mode"):
        ASHAScheduler().on_trial_result("A", {"training_iteration": 1})
    scheduler = ASHAScheduler(metric="a")
    with pytest.raises(ValueError, match="differs"):
        scheduler.set_search_properties("b", "max")


def test_search_spaces_are_seeded_and_grids_enumerate():
    space = {"lr": tune.loguniform(1e-4, 1e-1), "batch": tune.choice([16, 32, 64]), "layers": tune.randint(1, 4),
             "opt": {"name": tune.grid_search(["sgd", "adam"]), "momentum": tune.uniform(0.5, 0.9)},
             "width": tune.grid_search([64, 128]), "double": tune.sample_from(lambda spec: spec.config["width"] * 2)}
    gen = tune.search.BasicVariantGenerator(random_state=11)
    first = gen.variants(space, num_samples=2)
    assert first == tune.search.BasicVariantGenerator(random_state=11).variants(space, num_samples=2)
    assert first != tune.search.BasicVariantGenerator(random_state=12).variants(space, num_samples=2)
    np.random.seed(5)
    a = tune.search.BasicVariantGenerator().variants(space, 1)
    np.random.seed(5)
    assert a == tune.search.BasicVariantGenerator().variants(space, 1)  # numpy's global seed, as in Ray
    assert len(first) == 8  # 2 x 2 grid combinations, twice
    assert sorted((c["opt"]["name"], c["width"]) for c in first) == sorted(
        [(n, w) for n in ("sgd", "adam") for w in (64, 128)] * 2)
    for c in first:
        assert 1e-4 <= c["lr"] <= 1e-1 and c["batch"] in (16, 32, 64) and c["layers"] in (1, 2, 3)
        assert 0.5 <= c["opt"]["momentum"] <= 0.9 and c["double"] == 2 * c["width"]
    for bad, match in ((lambda: tune.uniform(2, 1), "below"), (lambda: tune.loguniform(0, 1), "above 0"),
                       (lambda: tune.choice([]), "non-empty"), (lambda: tune.grid_search([]), "non-empty"),
                       (lambda: tune.randint(0.5, 2), "integers")):
        with pytest.raises((ValueError, TypeError), match=match):
            bad()
    with pytest.raises(ValueError, match="num_samples"):
        tune.TuneConfig(num_samples=0)
    with pytest.raises(ValueError, match="reuse_actors"):
        tune.TuneConfig(reuse_actors=True)
    with pytest.raises(TypeError, match="search_alg"):
        tune.TuneConfig(search_alg=object())
    with pytest.raises(ValueError, match="max_concurrent"):
        tune.search.BasicVariantGenerator(max_concurrent=-1)


# --- on a cluster -----------------------------------------------------------------------------


def toy_objective(config):
    """A score that is the config's quality from the first report on; the better a config, the
    sooner it starts, so that the better trials reach each rung first."""
    time.sleep((1.0 - config["q"]) * 1.5)
    for step in range(config.get("steps", 9)):
        if config.get("fail_at") == step:
            raise RuntimeError(f"trial with q={config['q']} failed at step {step}")
        tune.report({"score": config["q"] + 0.001 * step, "step": step})
        time.sleep(0.05)


QUALITIES = [0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]


def test_asha_stops_the_worst_trials_at_the_rungs_and_finds_the_best(driver, tmp_path, capfd):
    asha = ASHAScheduler(max_t=9, grace_period=1, reduction_factor=3)
    results = tune.Tuner(toy_objective, param_space={"q": tune.grid_search(QUALITIES)},
                         tune_config=tune.TuneConfig(metric="score", mode="max", scheduler=asha),
                         run_config=RunConfig(name="asha", storage_path=str(tmp_path))).fit()
    assert len(results) == 8 and results.num_errors == 0
    best = results.get_best_result()
    assert best.config == {"q": 0.8}
    assert best.metrics["training_iteration"] == 9
    iterations = {r.config["q"]: r.metrics["training_iteration"] for r in results}
    # Every trial ended at a rung (1 or 3) or ran to max_t; the worst never got past the first rungs.
    assert set(iterations.values()) <= {1, 3, 9}, iterations
    assert iterations[0.1] in (1, 3) and sum(1 for i in iterations.values() if i < 9) >= 5, iterations
    # The scheduler's own decisions, replayed in the order it made them, agree with a fresh ASHA.
    replay = ASHAScheduler(metric="score", mode="max", max_t=9, grace_period=1, reduction_factor=3)
    for trial_id, t, score, _, action in asha.decisions:
        assert replay.on_trial_result(trial_id, {"training_iteration": t, "score": score}) == action
    for r in results:
        trial_id = r.metrics["trial_id"]
        assert asha.stopped_at[trial_id] == r.metrics["training_iteration"]
        assert len(r.metrics_history) == r.metrics["training_iteration"]
        assert (tmp_path / "asha" / r.path.split("/")[-1] / "result.json").exists()
    err = capfd.readouterr().err
    assert "stopped by AsyncHyperBandScheduler at training_iteration=1 (rung 1)" in err, err[-3000:]
    assert_resources_back(driver)


def test_a_failing_trial_is_reported_and_the_others_go_on(driver, tmp_path):
    space = {"q": tune.grid_search([0.9, 0.5, 0.2]), "steps": 3,
             "fail_at": tune.sample_from(lambda spec: 1 if spec.config["q"] == 0.5 else None)}
    # One trial at a time (the search's cap): each starts after the one before it ended.
    results = tune.Tuner(toy_objective, param_space=space,
                         tune_config=tune.TuneConfig(metric="score", mode="max", scheduler=FIFOScheduler(),
                                                     search_alg=tune.search.BasicVariantGenerator(max_concurrent=1)),
                         run_config=RunConfig(name="fails", storage_path=str(tmp_path))).fit()
    assert results.num_errors == 1 and results.num_terminated == 2
    failed = next(r for r in results if r.error is not None)
    assert failed.config["q"] == 0.5 and "failed at step 1" in str(failed.error)
    assert failed.metrics["training_iteration"] == 1
    assert sorted(r.metrics["training_iteration"] for r in results if r.error is None) == [3, 3]
    assert results.get_best_result().config["q"] == 0.9
    spans = sorted((r.metrics_history[0]["timestamp"] - r.metrics_history[0]["time_total_s"],
                    r.metrics_history[-1]["timestamp"]) for r in results)
    assert all(later[0] >= earlier[1] - 1 for earlier, later in zip(spans, spans[1:])), spans
    frame = results.get_dataframe()
    assert sorted(frame["config/q"]) == [0.2, 0.5, 0.9] and list(frame["training_iteration"]) == [3, 1, 3]
    assert results.get_dataframe(filter_metric="score", filter_mode="max")["step"].tolist() == [2, 0, 2]
    assert_resources_back(driver)


def test_a_trainer_as_trainable_runs_each_trial_as_a_training_run(driver, tmp_path):
    probe = tmp_path / "probe"
    probe.mkdir()
    trainer = DataParallelTrainer(train_helpers.linreg_loop,
                                  train_loop_config={"epochs": 6, "probe_dir": str(probe)},
                                  scaling_config=ScalingConfig(num_workers=2))
    results = tune.Tuner(trainer, param_space={"train_loop_config": {"lr": tune.grid_search([0.01, 0.25])}},
                         tune_config=tune.TuneConfig(metric="loss", mode="min"),
                         run_config=RunConfig(name="tuned", storage_path=str(tmp_path / "runs"))).fit()
    assert results.num_errors == 0, results.errors
    best = results.get_best_result()
    assert best.config == {"train_loop_config": {"lr": 0.25}}
    for r in results:
        assert [m["epoch"] for m in r.metrics_history] == list(range(6))
        # Each trial's workers checkpointed into the trial's own directory.
        assert r.checkpoint is not None and r.checkpoint.path.startswith(r.path + "/checkpoint_")
        with r.checkpoint.as_directory() as d:
            assert int(np.load(f"{d}/state.npz")["epoch"]) == 5
    assert_resources_back(driver)


def test_bad_input_to_a_tuner(driver, tmp_path):
    with pytest.raises(ValueError, match="'nope'"):
        tune.Tuner(toy_objective, param_space={"q": 0.5, "steps": 2},
                   tune_config=tune.TuneConfig(mode="max", scheduler=ASHAScheduler(metric="nope")),
                   run_config=RunConfig(name="nope", storage_path=str(tmp_path))).fit()
    with pytest.raises(TypeError, match="class trainables"):
        tune.Tuner(dict)
    with pytest.raises(ValueError, match="train_loop_config"):
        tune.Tuner(DataParallelTrainer(toy_objective), param_space={"scaling_config": {}})
    with pytest.raises(ValueError, match="metric and a mode"):
        tune.Tuner(toy_objective, param_space={"q": 0.5, "steps": 1},
                   run_config=RunConfig(name="no-metric", storage_path=str(tmp_path))).fit().get_best_result()
    assert_resources_back(driver)


def checkpointing_objective(config):
    import json as _json
    import os as _os
    import tempfile as _tempfile
    start = 0
    if tune.get_checkpoint():
        with tune.get_checkpoint().as_directory() as d:
            start = _json.load(open(_os.path.join(d, "state.json")))["step"] + 1
    for step in range(start, 5):
        if step == 3 and not _os.path.exists(config["marker"]):
            open(config["marker"], "w").close()
            raise RuntimeError("lost the trial at step 3")
        with _tempfile.TemporaryDirectory() as d:
            _json.dump({"step": step}, open(_os.path.join(d, "state.json"), "w"))
            tune.report({"step": step, "started_at": start}, checkpoint=tune.Checkpoint.from_directory(d))


def test_a_function_trial_checkpoints_and_is_restored_from_its_checkpoint(driver, tmp_path):
    results = tune.Tuner(checkpointing_objective, param_space={"marker": str(tmp_path / "failed-once")},
                         tune_config=tune.TuneConfig(metric="step", mode="max"),
                         run_config=RunConfig(name="restore", storage_path=str(tmp_path),
                                              failure_config=tune.FailureConfig(max_failures=1),
                                              checkpoint_config=tune.CheckpointConfig(num_to_keep=2))).fit()
    (result,) = results
    assert result.error is None
    assert [(m["step"], m["started_at"]) for m in result.metrics_history] == [
        (0, 0), (1, 0), (2, 0), (3, 3), (4, 3)]  # restored after step 2's checkpoint
    trial_dir = tmp_path / "restore" / result.path.split("/")[-1]
    assert sorted(p.name for p in trial_dir.glob("checkpoint_*")) == ["checkpoint_000003", "checkpoint_000004"]
    assert result.checkpoint.path == str(trial_dir / "checkpoint_000004")
    assert_resources_back(driver)
