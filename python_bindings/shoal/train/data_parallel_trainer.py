"""Ray's module path for DataParallelTrainer (ray.train.data_parallel_trainer)."""
from shoal.train.trainer import DataParallelTrainer

__all__ = ["DataParallelTrainer"]
