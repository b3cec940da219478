"""TorchTrainer and the Lightning integration on a three-node cluster: DDP over gloo with a
DistributedSampler, equal parameters on every rank, checkpoints restored after a failure with a
new MASTER_PORT, and a Lightning module trained with RayDDPStrategy, RayLightningEnvironment and
RayTrainReportCallback.

torch is not part of the main test environment (a 3 GB install from PyPI): these tests skip
there and run under `bash scripts/test_torch.sh`, which makes a virtualenv with torch and
lightning in build/torchvenv."""
import json
import os
import sys

import cloudpickle
import pytest

torch = pytest.importorskip("torch")

from conftest import PYTHON_DIR, assert_resources_back  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])
sys.path.insert(0, PYTHON_DIR)

import shoal  # noqa: E402
import shoal.train as train  # noqa: E402
from shoal.train import (Checkpoint, FailureConfig, RunConfig, ScalingConfig,  # noqa: E402
                         TrainingFailedError)
from shoal.train.torch import TorchConfig, TorchTrainer, prepare_data_loader, prepare_model  # noqa: E402


def ddp_loop(config):
    import tempfile

    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader, TensorDataset

    ctx = train.get_context()
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([[1.5], [-2.0], [0.5]]) + 0.25
    loader = prepare_data_loader(DataLoader(TensorDataset(torch.arange(64), x, y), batch_size=8, shuffle=True))
    model = prepare_model(torch.nn.Linear(3, 1))
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"])
    start = 0
    if train.get_checkpoint():
        with train.get_checkpoint().as_directory() as d:
            state = torch.load(os.path.join(d, "model.pt"))
            model.module.load_state_dict(state["model"])
            start = state["epoch"] + 1
    for epoch in range(start, config["epochs"]):
        loader.sampler.set_epoch(epoch)
        seen = []
        for idx, xb, yb in loader:
            seen += idx.tolist()
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            opt.step()
        params = torch.cat([p.detach().flatten() for p in model.parameters()])
        gathered = [torch.zeros_like(params) for _ in range(ctx.get_world_size())]
        dist.all_gather(gathered, params)
        metrics = {"epoch": epoch, "loss": float(loss), "seen": sorted(seen),
                   "params_equal": all(torch.equal(gathered[0], g) for g in gathered),
                   "master": f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}",
                   "backend": dist.get_backend(), "world": dist.get_world_size(), "rank": dist.get_rank()}
        if config.get("fail_once_at") == epoch and not os.path.exists(config["marker"]):
            open(config["marker"], "w").close()
            raise RuntimeError("simulated failure")
        with tempfile.TemporaryDirectory() as d:
            if ctx.get_world_rank() == 0:
                torch.save({"model": model.module.state_dict(), "epoch": epoch}, os.path.join(d, "model.pt"))
            train.report(metrics, checkpoint=Checkpoint.from_directory(d) if ctx.get_world_rank() == 0 else None)


def test_torch_trainer_runs_ddp_over_gloo_and_restores_after_a_failure(driver, tmp_path):
    trainer = TorchTrainer(ddp_loop, train_loop_config={"lr": 0.1, "epochs": 6, "fail_once_at": 3,
                                                        "marker": str(tmp_path / "failed-once")},
                           scaling_config=ScalingConfig(num_workers=2, placement_strategy="SPREAD"),
                           run_config=RunConfig(name="ddp", storage_path=str(tmp_path / "runs"),
                                                failure_config=FailureConfig(max_failures=1)))
    result = trainer.fit()
    history = result.metrics_history
    assert [m["epoch"] for m in history] == [0, 1, 2, 3, 4, 5]
    for m in history:
        assert m["backend"] == "gloo" and m["world"] == 2 and m["rank"] == 0 and m["params_equal"]
        assert len(m["seen"]) == 32  # rank 0's half of the 64 samples (DistributedSampler)
    assert history[-1]["loss"] < history[0]["loss"]
    # The restored attempt set torch.distributed up again on a new port.
    assert history[2]["master"] != history[3]["master"]
    assert sorted(p.name for p in (tmp_path / "runs" / "ddp").glob("checkpoint_*"))[-1] == "checkpoint_000005"
    with pytest.raises(ValueError, match="backend"):
        TorchConfig(backend="mpi")
    assert_resources_back(driver)


def lightning_loop(config):
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from shoal.train.lightning import (RayDDPStrategy, RayLightningEnvironment, RayTrainReportCallback,
                                       prepare_trainer)

    class Regressor(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, _):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("train_loss", loss, sync_dist=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    x = torch.randn(64, 2)
    y = x @ torch.tensor([[1.0], [-1.0]])
    trainer = pl.Trainer(max_epochs=config["epochs"], devices="auto", accelerator="cpu", strategy=RayDDPStrategy(),
                         plugins=[RayLightningEnvironment()], callbacks=[RayTrainReportCallback()],
                         enable_progress_bar=False, logger=False, enable_checkpointing=False)
    trainer = prepare_trainer(trainer)
    trainer.fit(Regressor(), DataLoader(TensorDataset(x, y), batch_size=8))


def test_lightning_module_trains_with_the_ray_strategy_environment_and_callback(driver, tmp_path):
    pytest.importorskip("lightning")
    result = TorchTrainer(lightning_loop, train_loop_config={"epochs": 3},
                          scaling_config=ScalingConfig(num_workers=2),
                          run_config=RunConfig(name="lightning", storage_path=str(tmp_path / "runs"))).fit()
    assert [m["epoch"] for m in result.metrics_history] == [0, 1, 2]
    assert result.metrics_history[-1]["train_loss"] < result.metrics_history[0]["train_loss"]
    assert result.metrics["step"] == 3 * 4  # 64 samples, 2 workers, batches of 8
    with result.checkpoint.as_directory() as d:
        state = torch.load(os.path.join(d, "checkpoint.ckpt"), weights_only=False)
        assert state["epoch"] == 2 and "state_dict" in state
    assert_resources_back(driver)
