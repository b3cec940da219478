"""Utilities in the shape of Ray's `ray.util`."""
from shoal.util import scheduling_strategies  # noqa: F401
