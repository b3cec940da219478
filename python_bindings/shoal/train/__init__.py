"""Data-parallel training under Ray Train's names (ray.train).

    from shoal.train import ScalingConfig, RunConfig, FailureConfig, Checkpoint
    from shoal.train.data_parallel_trainer import DataParallelTrainer
    import shoal.train

    def train_loop(config):
        ctx = shoal.train.get_context()
        start = 0
        if shoal.train.get_checkpoint():
            with shoal.train.get_checkpoint().as_directory() as d:
                start = load(d) + 1
        for epoch in range(start, config["epochs"]):
            ...
            shoal.train.report({"loss": loss}, checkpoint=Checkpoint.from_directory(tmp))

    result = DataParallelTrainer(train_loop, train_loop_config={"epochs": 10},
                                 scaling_config=ScalingConfig(num_workers=2),
                                 run_config=RunConfig(storage_path="s3://bucket/runs",
                                                      failure_config=FailureConfig(max_failures=2))).fit()

The workers are actors in one placement group; shoal.util.collective (backend "gloo") or
torch.distributed (TorchTrainer, shoal.train.torch) connect them. Checkpoints are persisted to
`<storage_path>/<name>/checkpoint_<n>` by the workers that report them; a run whose worker or
node dies is placed again and resumes from the latest one, up to FailureConfig.max_failures.
"""
from shoal.train._checkpoint import Checkpoint
from shoal.train._config import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from shoal.train._run import TrainingFailedError
from shoal.train._session import TrainContext, get_checkpoint, get_context, report
from shoal.train._storage import StorageError
from shoal.train.trainer import DataParallelTrainer, Result

__all__ = ["Checkpoint", "CheckpointConfig", "DataParallelTrainer", "FailureConfig", "Result", "RunConfig",
           "ScalingConfig", "StorageError", "TrainContext", "TrainingFailedError", "get_checkpoint", "get_context",
           "report"]
