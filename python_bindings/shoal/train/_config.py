"""The configuration objects of a training run, under Ray Train's names and defaults.

Every field either works as Ray's does or is refused at construction, naming the field."""
import dataclasses
import numbers
import os
from typing import Any, Callable, Dict, Mapping, Optional, Union

PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


def _refuse(cls_name, field, value, why):
    raise ValueError(f"{cls_name}({field}={value!r}) is not supported by Shoal: {why}")


@dataclasses.dataclass
class ScalingConfig:
    """How many workers a run has and what each one holds.

    Each worker is an actor in one bundle of a placement group (`placement_strategy`). Without
    `resources_per_worker` a worker holds 1 CPU, or 1 GPU and no CPU with `use_gpu` (Ray's
    defaults); fractional amounts (`{"GPU": 0.5}`) pack several workers on one device."""
    num_workers: Optional[int] = None
    use_gpu: bool = False
    resources_per_worker: Optional[Dict[str, float]] = None
    placement_strategy: str = "PACK"
    trainer_resources: Optional[Dict[str, float]] = None
    accelerator_type: Optional[str] = None

    def __post_init__(self):
        if self.num_workers is None:
            self.num_workers = 1
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, numbers.Integral) \
                or self.num_workers < 1:
            raise ValueError(f"ScalingConfig(num_workers={self.num_workers!r}): num_workers must be a positive "
                             "integer (the number of training workers)")
        self.num_workers = int(self.num_workers)
        if not isinstance(self.use_gpu, bool):
            raise TypeError(f"ScalingConfig(use_gpu={self.use_gpu!r}): use_gpu must be True or False")
        if self.placement_strategy not in PLACEMENT_STRATEGIES:
            raise ValueError(f"ScalingConfig(placement_strategy={self.placement_strategy!r}): must be one of "
                             f"{', '.join(PLACEMENT_STRATEGIES)}")
        if self.resources_per_worker is not None:
            if not isinstance(self.resources_per_worker, Mapping):
                raise TypeError("ScalingConfig(resources_per_worker=...) must be a dict of resource name to amount, "
                                f"got {type(self.resources_per_worker).__name__}")
            for name, amount in self.resources_per_worker.items():
                if not isinstance(name, str) or isinstance(amount, bool) or not isinstance(amount, numbers.Real) \
                        or amount < 0:
                    raise ValueError(f"ScalingConfig(resources_per_worker={dict(self.resources_per_worker)!r}): "
                                     f"{name!r} must map to a non-negative number")
            if self.resources_per_worker.get("GPU", 0) > 0 and not self.use_gpu:
                raise ValueError("`use_gpu` is False but `GPU` was found in `resources_per_worker`. Either set "
                                 "`use_gpu` to True or remove `GPU` from `resources_per_worker`.")
        if self.trainer_resources is not None:
            _refuse("ScalingConfig", "trainer_resources", self.trainer_resources,
                    "Shoal runs a trainer's controller in the process that calls fit(), which holds no resources")
        if self.accelerator_type is not None:
            _refuse("ScalingConfig", "accelerator_type", self.accelerator_type,
                    "nodes do not advertise accelerator types; use resources_per_worker with a custom resource")

    @property
    def num_gpus_per_worker(self):
        return self.worker_resources().get("GPU", 0)

    @property
    def num_cpus_per_worker(self):
        return self.worker_resources().get("CPU", 0)

    def worker_resources(self) -> Dict[str, float]:
        """What one worker's bundle holds (Ray's `_resources_per_worker_not_none`)."""
        if self.resources_per_worker is None:
            return {"GPU": 1} if self.use_gpu else {"CPU": 1}
        out = {k: float(v) for k, v in self.resources_per_worker.items() if v != 0}
        if self.use_gpu:
            out.setdefault("GPU", 1.0)
        if not out:
            out = {"CPU": 1.0} if not self.use_gpu else {"GPU": 1.0}
        return out

    def as_placement_group_bundles(self):
        return [dict(self.worker_resources()) for _ in range(self.num_workers)]


@dataclasses.dataclass
class FailureConfig:
    """How often a run is restored after a failure: `max_failures` 0 (never), N, or -1 (always).
    `fail_fast` (Tune) ends the whole experiment at the first trial that fails for good."""
    max_failures: int = 0
    fail_fast: Union[bool, str] = False

    def __post_init__(self):
        if isinstance(self.max_failures, bool) or not isinstance(self.max_failures, numbers.Integral) \
                or self.max_failures < -1:
            raise ValueError(f"FailureConfig(max_failures={self.max_failures!r}): must be an integer >= -1 "
                             "(-1: restore without limit)")
        if self.fail_fast not in (True, False, "raise"):
            raise ValueError(f"FailureConfig(fail_fast={self.fail_fast!r}): must be True, False or 'raise'")
        if self.fail_fast and self.max_failures != 0:
            raise ValueError("max_failures must be 0 if fail_fast=True.")


@dataclasses.dataclass
class CheckpointConfig:
    """Which persisted checkpoints are kept: the best `num_to_keep` by
    `checkpoint_score_attribute` (a reported metric) in `checkpoint_score_order`, or the most
    recent ones without a score attribute. The latest checkpoint is always kept, so that a
    failed run can be restored from it."""
    num_to_keep: Optional[int] = None
    checkpoint_score_attribute: Optional[str] = None
    checkpoint_score_order: str = "max"
    checkpoint_frequency: int = 0
    checkpoint_at_end: Optional[bool] = None

    def __post_init__(self):
        if self.num_to_keep is not None and (isinstance(self.num_to_keep, bool)
                                             or not isinstance(self.num_to_keep, numbers.Integral)
                                             or self.num_to_keep <= 0):
            raise ValueError(f"Received invalid num_to_keep: {self.num_to_keep}. Must be None or an integer >= 1.")
        if self.checkpoint_score_order not in ("max", "min"):
            raise ValueError(f"CheckpointConfig(checkpoint_score_order={self.checkpoint_score_order!r}): must be "
                             "'max' or 'min'")
        if self.checkpoint_score_attribute is not None and not isinstance(self.checkpoint_score_attribute, str):
            raise TypeError("CheckpointConfig(checkpoint_score_attribute=...) must be a metric name (str)")
        if self.checkpoint_frequency:
            _refuse("CheckpointConfig", "checkpoint_frequency", self.checkpoint_frequency,
                    "it applies to class trainables; a training function checkpoints through report(checkpoint=...)")
        if self.checkpoint_at_end:
            _refuse("CheckpointConfig", "checkpoint_at_end", self.checkpoint_at_end,
                    "it applies to class trainables; a training function checkpoints through report(checkpoint=...)")


def default_storage_path():
    """Where runs are stored without a storage_path: $SHOAL_STORAGE_PATH, else ~/shoal_results
    (Ray's is ~/ray_results)."""
    return os.environ.get("SHOAL_STORAGE_PATH") or os.path.expanduser("~/shoal_results")


@dataclasses.dataclass
class RunConfig:
    """Where a run's results and checkpoints go and how it reacts to failures.

    `storage_path` is a local directory or a URI (`s3://bucket/prefix`, served through
    pyarrow.fs; an S3-compatible server is named by `?endpoint_override=host:port&scheme=http`
    in the URI or by $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL), or give a pyarrow filesystem as
    `storage_filesystem`. Checkpoints land in `<storage_path>/<name>/checkpoint_<n>`.
    `stop` ends a run (or trial) once a reported metric reaches a value ({metric: value}) or
    a function `stop(trial_id, result)` answers True. `verbose` 0 prints nothing, 1 or more a
    line per report of rank 0 (or trial)."""
    name: Optional[str] = None
    storage_path: Optional[str] = None
    storage_filesystem: Any = None
    failure_config: Optional[FailureConfig] = None
    checkpoint_config: Optional[CheckpointConfig] = None
    stop: Optional[Union[Mapping, Callable]] = None
    verbose: Optional[int] = None
    callbacks: Optional[list] = None
    sync_config: Any = None
    log_to_file: Any = False

    def __post_init__(self):
        if self.failure_config is None:
            self.failure_config = FailureConfig()
        if self.checkpoint_config is None:
            self.checkpoint_config = CheckpointConfig()
        if not isinstance(self.failure_config, FailureConfig):
            raise TypeError(f"RunConfig(failure_config=...) must be a FailureConfig, got "
                            f"{type(self.failure_config).__name__}")
        if not isinstance(self.checkpoint_config, CheckpointConfig):
            raise TypeError(f"RunConfig(checkpoint_config=...) must be a CheckpointConfig, got "
                            f"{type(self.checkpoint_config).__name__}")
        if self.name is not None and (not isinstance(self.name, str) or not self.name or "/" in self.name):
            raise ValueError(f"RunConfig(name={self.name!r}): must be a non-empty string without '/'")
        if self.storage_path is not None:
            if not isinstance(self.storage_path, (str, os.PathLike)):
                raise TypeError(f"RunConfig(storage_path=...) must be a path or URI string, got "
                                f"{type(self.storage_path).__name__}")
            self.storage_path = os.fspath(self.storage_path)
        if self.stop is not None and not (isinstance(self.stop, Mapping) or callable(self.stop)):
            raise TypeError("RunConfig(stop=...) must be a dict of metric to value or a function (trial_id, result)")
        if self.verbose is not None and (isinstance(self.verbose, bool) or self.verbose not in (0, 1, 2, 3)):
            raise ValueError(f"RunConfig(verbose={self.verbose!r}): must be 0, 1, 2 or 3")
        if self.callbacks:
            _refuse("RunConfig", "callbacks", self.callbacks, "Tune callbacks are not implemented")
        if self.sync_config is not None:
            _refuse("RunConfig", "sync_config", self.sync_config,
                    "workers write checkpoints straight to storage_path; there is nothing to sync")
        if self.log_to_file:
            _refuse("RunConfig", "log_to_file", self.log_to_file,
                    "worker output goes to the worker logs and the driver (shoal logs)")


def should_stop(stop, trial_id, metrics):
    """True when `metrics` meets RunConfig.stop."""
    if stop is None:
        return False
    if callable(stop) and not isinstance(stop, Mapping):
        return bool(stop(trial_id, metrics))
    for key, bound in stop.items():
        if key in metrics and metrics[key] >= bound:
            return True
    return False
