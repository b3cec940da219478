"""PyTorch Lightning inside a TorchTrainer (Ray's ray.train.lightning): a DDP strategy and a
cluster environment that take ranks and devices from the Shoal training context, and a callback
that reports each epoch's metrics with a checkpoint.

    trainer = pl.Trainer(devices="auto", accelerator="auto",
                         strategy=RayDDPStrategy(), plugins=[RayLightningEnvironment()],
                         callbacks=[RayTrainReportCallback()])
    trainer = prepare_trainer(trainer)

Needs the `lightning` package (or the older `pytorch_lightning`)."""
import os
import shutil
import tempfile

try:
    import lightning.pytorch as pl
    from lightning.pytorch.plugins.environments import LightningEnvironment
except ImportError:  # the older package name
    try:
        import pytorch_lightning as pl
        from pytorch_lightning.plugins.environments import LightningEnvironment
    except ImportError as e:
        raise ImportError("shoal.train.lightning needs PyTorch Lightning: pip install lightning") from e

from shoal.train import _session
from shoal.train._checkpoint import Checkpoint
from shoal.train.torch import get_device

CHECKPOINT_NAME = "checkpoint.ckpt"


def _context():
    return _session._require("lightning").context


class RayDDPStrategy(pl.strategies.DDPStrategy):
    """DDP over the process group TorchTrainer set up, on this worker's device."""

    @property
    def root_device(self):
        return get_device()

    @property
    def distributed_sampler_kwargs(self):
        return dict(num_replicas=self.world_size, rank=self.global_rank)


class RayLightningEnvironment(LightningEnvironment):
    """Ranks and sizes from the training context (Lightning must not change them)."""

    def world_size(self):
        return _context().get_world_size()

    def global_rank(self):
        return _context().get_world_rank()

    def local_rank(self):
        return _context().get_local_rank()

    def node_rank(self):
        return _context().get_node_rank()

    def set_world_size(self, size):
        pass

    def set_global_rank(self, rank):
        pass

    def teardown(self):
        pass


class RayTrainReportCallback(pl.callbacks.Callback):
    """At the end of every training epoch: reports the trainer's callback metrics (plus epoch
    and step) with a checkpoint of the trainer (checkpoint.ckpt, written by rank 0)."""

    CHECKPOINT_NAME = CHECKPOINT_NAME

    def on_train_epoch_end(self, trainer, pl_module):
        metrics = {k: (v.item() if hasattr(v, "item") else v) for k, v in trainer.callback_metrics.items()}
        metrics["epoch"] = trainer.current_epoch
        metrics["step"] = trainer.global_step
        tmpdir = tempfile.mkdtemp(prefix="shoal-lightning-")
        try:
            trainer.save_checkpoint(os.path.join(tmpdir, CHECKPOINT_NAME), weights_only=False)
            has_files = bool(os.listdir(tmpdir))
            _session.report(metrics, checkpoint=Checkpoint.from_directory(tmpdir) if has_files else None)
            trainer.strategy.barrier()
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)


def prepare_trainer(trainer):
    """Checks that the Lightning trainer uses the Shoal strategy and environment; answers it."""
    if not isinstance(trainer.strategy, RayDDPStrategy):
        raise RuntimeError(f"the Lightning trainer's strategy is {type(trainer.strategy).__name__}: use "
                           "shoal.train.lightning.RayDDPStrategy()")
    if not isinstance(trainer.strategy.cluster_environment, RayLightningEnvironment):
        raise RuntimeError("the Lightning trainer's cluster environment is not RayLightningEnvironment: pass "
                           "plugins=[shoal.train.lightning.RayLightningEnvironment()]")
    return trainer


__all__ = ["RayDDPStrategy", "RayLightningEnvironment", "RayTrainReportCallback", "prepare_trainer"]
