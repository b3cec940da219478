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
    assert list(result.metrics_dataframe["epoch"]) == list(range(40))
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


@pytest.fixture
def s3_server():
    """moto's S3-compatible server on loopback (the moto[server] package), with one bucket."""
    import boto3
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    env = {"AWS_ACCESS_KEY_ID": "shoal-test", "AWS_SECRET_ACCESS_KEY": "shoal-test-secret",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    try:
        def up():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        wait_until(up, 30, what="the S3 server")
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
        client.create_bucket(Bucket="shoal-runs")
        yield env, client
    finally:
        proc.kill()
        proc.wait(10)


def test_checkpoints_go_to_s3_and_a_run_resumes_from_them(cluster, tmp_path, s3_server, monkeypatch):
    env, client = s3_server
    # As in the seed's MinIO set-up: the nodes and the driver get the endpoint and credentials
    # from the environment; storage_path is a plain s3:// URI.
    cluster.env.update(env)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cluster.start_head("--num-cpus", 2, "--num-gpus", 0)
    cluster.start_worker("--num-cpus", 2, "--num-gpus", 0)
    wait_until(lambda: len(cluster.alive_nodes()) == 2, 20, what="2 alive nodes")
    shoal.init(address=cluster.address)
    try:
        trainer, _ = linreg_trainer(tmp_path, "on-s3", epochs=12, num_to_keep=3, storage_path="s3://shoal-runs/team")
        result = trainer.fit()
        assert result.path == "s3://shoal-runs/team/on-s3"
        keys = {o["Key"] for o in client.list_objects_v2(Bucket="shoal-runs", Prefix="team/on-s3/")["Contents"]}
        assert {f"team/on-s3/checkpoint_{i:06d}/state.npz" for i in (9, 10, 11)} <= keys, sorted(keys)
        assert not any("checkpoint_000008" in k for k in keys), sorted(keys)  # num_to_keep=3
        assert "team/on-s3/result.json" in keys and "team/on-s3/checkpoints.json" in keys
        assert result.checkpoint.path == "shoal-runs/team/on-s3/checkpoint_000011"
        assert "s3" in repr(result.checkpoint).split("path=")[0], repr(result.checkpoint)
        # The driver reads the checkpoint back from S3.
        local = result.checkpoint.to_directory(str(tmp_path / "back"))
        assert int(np.load(os.path.join(local, "state.npz"))["epoch"]) == 11
        # A new run resumes from the S3 checkpoint (epochs 12..19 only) and converges.
        more, probe = linreg_trainer(tmp_path, "more", epochs=20, storage_path="s3://shoal-runs/team")
        more.resume_from_checkpoint = result.checkpoint
        resumed = more.fit()
        assert [m["epoch"] for m in resumed.metrics_history] == list(range(12, 20))
        assert probes(probe, "grad_rank0_epoch11_") == [] and len(probes(probe, "grad_rank0_epoch12_")) == 1
        assert_resources_back(cluster)
    finally:
        shoal.shutdown()


def test_bad_input_is_refused_clearly(driver, tmp_path):
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="num_workers"):
            ScalingConfig(num_workers=bad)
    with pytest.raises(ValueError, match="placement_strategy"):
        ScalingConfig(num_workers=2, placement_strategy="EVERYWHERE")
    with pytest.raises(ValueError, match="use_gpu"):
        ScalingConfig(num_workers=1, resources_per_worker={"GPU": 0.5})
    with pytest.raises(ValueError, match="trainer_resources"):
        ScalingConfig(num_workers=1, trainer_resources={"CPU": 1})
    with pytest.raises(ValueError, match="max_failures"):
        FailureConfig(max_failures=-2)
    with pytest.raises(ValueError, match="num_to_keep"):
        CheckpointConfig(num_to_keep=0)
    with pytest.raises(ValueError, match="sync_config"):
        RunConfig(sync_config=object())
    with pytest.raises(ValueError, match="datasets"):
        DataParallelTrainer(linreg_loop, datasets={"train": [1, 2]})
    with pytest.raises(TypeError, match="scaling_config"):
        DataParallelTrainer(linreg_loop, scaling_config={"num_workers": 2})
    with pytest.raises(RuntimeError, match="inside a training function"):
        train.report({"loss": 1.0})
    assert train.get_checkpoint() is None

    # A storage path that cannot be written stops fit() before anything starts, naming it.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for path in (str(blocker / "runs"), "/proc/shoal-runs"):
        trainer = DataParallelTrainer(linreg_loop, train_loop_config={}, run_config=RunConfig(name="x", storage_path=path))
        with pytest.raises(train.StorageError, match="cannot be written") as info:
            trainer.fit()
        assert path in str(info.value)

    # A training function that raises is restored max_failures times, then fit() raises with the cause.
    def divide(config):
        train.report({"step": 0})
        return 1 / 0

    trainer = DataParallelTrainer(divide, train_loop_config={"x": 1}, scaling_config=ScalingConfig(num_workers=2),
                                  run_config=RunConfig(name="raises", storage_path=str(tmp_path / "runs"),
                                                       failure_config=FailureConfig(max_failures=1)))
    with pytest.raises(TrainingFailedError, match="ZeroDivisionError") as info:
        trainer.fit()
    assert "after 2 failure(s)" in str(info.value) and isinstance(info.value.__cause__, ZeroDivisionError)

    # A config for a function that takes none.
    trainer = DataParallelTrainer(lambda: None, train_loop_config={"lr": 1},
                                  run_config=RunConfig(name="no-args", storage_path=str(tmp_path / "runs")))
    with pytest.raises(TrainingFailedError, match="takes no argument"):
        trainer.fit()
    assert_resources_back(driver)


def test_workers_no_node_can_hold_wait_as_demand_and_say_so(driver, tmp_path):
    script = tmp_path / "infeasible.py"
    script.write_text(f"""
import shoal, shoal.train as train
from shoal.train.data_parallel_trainer import DataParallelTrainer
shoal.init(address="{driver.address}")
DataParallelTrainer(lambda: None, scaling_config=train.ScalingConfig(num_workers=2, resources_per_worker={{"CPU": 64}}),
                    run_config=train.RunConfig(name="big", storage_path="{tmp_path / 'runs'}")).fit()
""")
    proc = subprocess.Popen([sys.executable, str(script)], env=dict(driver.env, PYTHONPATH=PYTHON_DIR),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(tmp_path))
    driver.extra_pids.append(proc.pid)
    try:
        def pending():
            groups = driver.status()["placement_groups"]["pending"]
            return [g for g in groups if g["bundles"] and g["bundles"][0]["resources"].get("CPU") == 64]
        groups = wait_until(pending, 30, what="the run's placement group as pending demand")
        assert len(groups[0]["bundles"]) == 2
        assert "64" in driver.shoal("status").stdout
        # The driver says why it waits (its first word after WAIT_LOG_S).
        line = proc.stderr.readline()
        assert "Waiting for resources for 2 workers of {'CPU': 64.0}" in line, line
        assert "no node in the cluster can hold one worker" in line and "shoal status" in line, line
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(10)
    wait_until(lambda: not pending(), 30, what="the dead driver's placement group to go")


HALF_GPU_JOB = '''
import json, os, sys, time
import shoal, shoal.train as train
from shoal.train import RunConfig, ScalingConfig
from shoal.train.data_parallel_trainer import DataParallelTrainer

MARKS = sys.argv[1]


def train_func(config):
    ctx = shoal.get_runtime_context()
    me = {"node": ctx.get_node_id(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
          "gpu_ids": [str(g) for g in shoal.get_gpu_ids()], "job": ctx.get_job_id(),
          "gpus": ctx.get_assigned_resources().get("GPU")}
    with open(os.path.join(MARKS, me["job"]), "w") as f:
        json.dump(me, f)
    deadline = time.time() + 90
    while len(os.listdir(MARKS)) < 3 and time.time() < deadline:  # all three trainings at once
        time.sleep(0.1)
    train.report(dict(me, together=len(os.listdir(MARKS))))


result = DataParallelTrainer(train_func, scaling_config=ScalingConfig(
    num_workers=1, use_gpu=True, resources_per_worker={"GPU": 0.5, "CPU": 1}),
    run_config=RunConfig(storage_path=sys.argv[2])).fit()
print("TRAINED " + json.dumps(result.metrics), flush=True)
'''


def test_three_half_gpu_trainings_as_jobs_share_two_gpus(cluster, tmp_path):
    """The seed's exercise: three single-worker 0.5-GPU trainings submitted as three jobs on two
    1-GPU nodes all run at once, two of them on one device."""
    cluster.start_head("--num-cpus", 2, "--num-gpus", 0, dashboard=True)
    cluster.start_worker("--num-cpus", 2, "--num-gpus", 1)
    cluster.start_worker("--num-cpus", 2, "--num-gpus", 1)
    wait_until(lambda: len(cluster.alive_nodes()) == 3, 20, what="3 alive nodes")
    work, marks = tmp_path / "work", tmp_path / "marks"
    work.mkdir()
    marks.mkdir()
    (work / "train.py").write_text(HALF_GPU_JOB)
    env = json.dumps({"env_vars": {"PYTHONPATH": PYTHON_DIR}})
    ids = []
    for _ in range(3):
        proc = cluster.shoal("job", "submit", "--no-wait", "--working-dir", work, "--runtime-env-json", env, "--",
                             sys.executable, "train.py", marks, tmp_path / "runs")
        ids.append(proc.stdout.split("Job '")[1].split("'")[0])

    def all_done():
        states = [cluster.api("GET", f"/api/jobs/{i}")[1]["status"] for i in ids]
        assert "FAILED" not in states, [cluster.shoal("job", "logs", i).stdout[-2000:] for i in ids]
        return all(s == "SUCCEEDED" for s in states)

    wait_until(all_done, 180, interval=0.5, what="the three training jobs to succeed")
    placed = []
    for i in ids:
        logs = cluster.shoal("job", "logs", i).stdout
        line = next(l for l in logs.splitlines() if l.startswith("TRAINED "))
        metrics = json.loads(line[len("TRAINED "):])
        assert metrics["together"] == 3, str(metrics)  # the three ran at the same time
        assert metrics["gpus"] == 0.5 and metrics["cuda_visible_devices"] == "0", str(metrics)
        placed.append((metrics["node"], metrics["cuda_visible_devices"]))
    assert sorted(placed.count(p) for p in set(placed)) == [1, 2], placed  # two share one device
    assert_resources_back(cluster)


def test_checkpoint_book_keeps_the_best_by_score_and_always_the_latest(tmp_path):
    from shoal.train._run import CheckpointBook
    book = CheckpointBook(None, str(tmp_path), CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="acc",
                                                                checkpoint_score_order="max"))
    for index, acc in enumerate([0.5, 0.9, 0.3, 0.7, 0.1]):
        (tmp_path / f"checkpoint_{index:06d}").mkdir()
        book.register(index, {"acc": acc})
    # The best other than the latest (0.9), and the latest (0.1) to restore from.
    assert sorted(p.name for p in tmp_path.glob("checkpoint_*")) == ["checkpoint_000001", "checkpoint_000004"]
    assert [m["acc"] for _, m in book.best()] == [0.9, 0.1]
    assert book.latest().path == str(tmp_path / "checkpoint_000004")
    assert json.loads((tmp_path / "checkpoints.json").read_text())[0]["index"] == 1
    with pytest.raises(ValueError, match="no metric 'acc'"):
        book.register(5, {"loss": 1.0})
    # A new run under the same name numbers its checkpoints after the old ones.
    assert CheckpointBook(None, str(tmp_path), CheckpointConfig()).first_free_index() == 5
    recent = CheckpointBook(None, str(tmp_path / "r"), CheckpointConfig(num_to_keep=1))
    for index in range(3):
        (tmp_path / "r" / f"checkpoint_{index:06d}").mkdir(parents=True)
        recent.register(index, {})
    assert [p.name for p in (tmp_path / "r").glob("checkpoint_*")] == ["checkpoint_000002"]


def test_runs_named_by_default_in_the_same_second_get_a_directory_each(tmp_path):
    """Default run names are the trainer's class and the second it started (as in Ray); runs that
    start in the same second, in separate processes, each claim their own directory."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from shoal.train import _storage; "
            "print(_storage.claim_fresh_dir(None, sys.argv[2], 'DataParallelTrainer_2026-12-07_12-43-28'))")
    procs = [subprocess.Popen([sys.executable, "-c", code, PYTHON_DIR, str(tmp_path)], stdout=subprocess.PIPE,
                              text=True) for _ in range(4)]
    names = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    base = "DataParallelTrainer_2026-12-07_12-43-28"
    assert names == sorted([base, base + "_2", base + "_3", base + "_4"])
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    # Two runs sharing one named directory check it at once without removing each other's probe.
    from shoal.train import _storage
    errors = []

    def check():
        for _ in range(50):
            try:
                _storage.check_writable(None, str(tmp_path / base))
            except _storage.StorageError as e:
                errors.append(e)

    threads = [threading.Thread(target=check) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list((tmp_path / base).iterdir()) == []
