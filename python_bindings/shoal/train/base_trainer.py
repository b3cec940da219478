"""Ray's module path for TrainingFailedError (ray.train.base_trainer)."""
from shoal.train._run import TrainingFailedError

__all__ = ["TrainingFailedError"]
