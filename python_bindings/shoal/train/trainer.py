"""DataParallelTrainer and Result (Ray's ray.train.data_parallel_trainer.DataParallelTrainer and
ray.train.Result)."""
import dataclasses
import datetime
from typing import Any, Callable, Dict, List, Optional, Tuple

from shoal.train._checkpoint import Checkpoint
from shoal.train._config import RunConfig, ScalingConfig
from shoal.train import _storage
from shoal.train._run import TrainingFailedError, TrainingRun, _default_storage


@dataclasses.dataclass
class Result:
    """What a finished run left: rank 0's last `metrics`, the latest persisted `checkpoint`,
    the run's storage `path`, the `error` it failed with (None on success), the checkpoints
    kept with their metrics (`best_checkpoints`) and every report of rank 0 in order
    (`metrics_history`; `metrics_dataframe` is the same as a pandas DataFrame)."""
    metrics: Dict[str, Any]
    checkpoint: Optional[Checkpoint]
    error: Optional[BaseException]
    path: str
    filesystem: Any = None
    best_checkpoints: List[Tuple[Checkpoint, Dict[str, Any]]] = dataclasses.field(default_factory=list)
    metrics_history: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    config: Optional[Dict[str, Any]] = None

    @property
    def metrics_dataframe(self):
        try:
            import pandas
        except ImportError as e:
            raise ImportError("Result.metrics_dataframe needs pandas (pip install pandas); "
                              "Result.metrics_history has the same rows as dicts") from e
        return pandas.DataFrame(self.metrics_history)

    def get_best_checkpoint(self, metric, mode):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        scored = [(c, m[metric]) for c, m in self.best_checkpoints if metric in m]
        if not scored:
            return None
        pick = max if mode == "max" else min
        return pick(scored, key=lambda cm: cm[1])[0]

    def __repr__(self):
        return (f"Result(metrics={self.metrics!r}, path={self.path!r}, checkpoint={self.checkpoint!r}, "
                f"error={self.error!r})")


def _timestamp():
    return datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


class DataParallelTrainer:
    """Runs `train_loop_per_worker(train_loop_config)` on `scaling_config.num_workers` workers
    placed together in one placement group.

    Inside the function, `shoal.train.get_context()` says the worker's rank,
    `shoal.train.report(metrics, checkpoint=...)` reports a step (every worker reports at the same
    steps; rank 0's metrics are the run's; checkpoints are copied to
    `<storage_path>/<name>/checkpoint_<n>`), and `shoal.train.get_checkpoint()` answers the
    checkpoint to resume from. When a worker or its node dies (or the function raises), every
    worker is stopped, the group is placed again on the nodes alive and the function starts again
    from the latest checkpoint, up to `FailureConfig.max_failures` times; then `fit()` raises
    TrainingFailedError with the cause."""

    _backend_factory = None  # TorchTrainer sets up torch.distributed through its backend

    def __init__(self, train_loop_per_worker: Callable, *, train_loop_config: Optional[Dict] = None,
                 backend_config=None, scaling_config: Optional[ScalingConfig] = None,
                 run_config: Optional[RunConfig] = None, datasets=None, dataset_config=None,
                 resume_from_checkpoint: Optional[Checkpoint] = None, metadata=None):
        if not callable(train_loop_per_worker):
            raise TypeError(f"train_loop_per_worker must be a function, got {type(train_loop_per_worker).__name__}")
        if train_loop_config is not None and not isinstance(train_loop_config, dict):
            raise TypeError(f"train_loop_config must be a dict, got {type(train_loop_config).__name__}")
        if scaling_config is not None and not isinstance(scaling_config, ScalingConfig):
            raise TypeError(f"scaling_config must be a shoal.train.ScalingConfig, got {type(scaling_config).__name__}")
        if run_config is not None and not isinstance(run_config, RunConfig):
            raise TypeError(f"run_config must be a shoal.train.RunConfig, got {type(run_config).__name__}")
        if datasets is not None or dataset_config is not None:
            raise ValueError("datasets/dataset_config are not supported by Shoal (there is no shoal.data): load the "
                             "data inside train_loop_per_worker, sharded by get_context().get_world_rank()")
        if metadata is not None:
            raise ValueError("metadata= is not supported by Shoal: use Checkpoint.set_metadata on the checkpoints")
        if resume_from_checkpoint is not None and not isinstance(resume_from_checkpoint, Checkpoint):
            raise TypeError("resume_from_checkpoint must be a shoal.train.Checkpoint")
        self.train_loop_per_worker = train_loop_per_worker
        self.train_loop_config = train_loop_config
        self.backend_config = self._check_backend_config(backend_config)
        self.scaling_config = scaling_config or ScalingConfig()
        self.run_config = run_config or RunConfig()
        self.resume_from_checkpoint = resume_from_checkpoint

    def _check_backend_config(self, backend_config):
        if backend_config is not None:
            raise ValueError("DataParallelTrainer(backend_config=...) is not supported: set collectives up in the "
                             "training function (shoal.util.collective) or use TorchTrainer")
        return None

    def _backend(self):
        return None

    def _default_name(self):
        return f"{type(self).__name__}_{_timestamp()}"

    def _training_run(self, config, run_config, name, trial_info=None, on_report=None):
        return TrainingRun(self.train_loop_per_worker, config, self.scaling_config, run_config, name,
                           backend=self._backend(), resume_from=self.resume_from_checkpoint,
                           trial_info=trial_info, on_report=on_report)

    def fit(self) -> Result:
        """Runs the training to the end; answers its Result, or raises TrainingFailedError."""
        from shoal._private import runtime
        runtime.connect()  # Ray's implicit init
        name = self.run_config.name
        if not name:
            fs, root = _storage.resolve(self.run_config.storage_path or _default_storage(),
                                        self.run_config.storage_filesystem)
            name = _storage.claim_fresh_dir(fs, root, self._default_name())
        result = self._training_run(self.train_loop_config, self.run_config, name).execute()
        result.config = self.train_loop_config
        if result.error is not None:
            raise result.error
        return result

    def __repr__(self):
        return f"<{type(self).__name__} scaling_config={self.scaling_config!r} run_config={self.run_config!r}>"


__all__ = ["DataParallelTrainer", "Result", "TrainingFailedError"]
