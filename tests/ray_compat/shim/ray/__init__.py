"""Measure shim: `import ray` -> Shoal.

Every `ray.X` module is Shoal's `shoal.X` (the same module object), except the harness's own
test-helper modules that live beside this file (ray/_private/test_utils.py,
ray/_common/test_utils.py, ray/cluster_utils.py, ray/tests/...), which re-implement Ray's test
helpers on the public API. A `ray.X` with neither a harness file nor a `shoal.X` raises
ModuleNotFoundError, as a missing feature should.
"""
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

_SHIM_DIR = os.path.dirname(os.path.abspath(__file__))


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target):
        self.target = target
        self._orig_spec = None

    def create_module(self, spec):
        module = importlib.import_module(self.target)
        self._orig_spec = module.__spec__
        return module

    def exec_module(self, module):
        module.__spec__ = self._orig_spec  # keep Shoal's own spec on Shoal's module


class _RayToShoalFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith("ray."):
            return None
        rel = fullname.split(".")[1:]
        base = os.path.join(_SHIM_DIR, *rel)
        if os.path.isfile(os.path.join(base, "__init__.py")):
            return importlib.util.spec_from_file_location(
                fullname, os.path.join(base, "__init__.py"), submodule_search_locations=[base])
        if os.path.isfile(base + ".py"):
            return importlib.util.spec_from_file_location(fullname, base + ".py")
        target_name = "shoal." + ".".join(rel)
        try:
            spec = importlib.util.find_spec(target_name)
        except (ImportError, ValueError, AttributeError):
            spec = None
        if spec is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(target_name),
                                              is_package=spec.submodule_search_locations is not None)


if not any(isinstance(f, _RayToShoalFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _RayToShoalFinder())

import shoal as _shoal  # noqa: E402
from shoal import *  # noqa: E402,F401,F403

for _name in dir(_shoal):
    if not _name.startswith("__") and _name not in globals():
        globals()[_name] = getattr(_shoal, _name)

__version__ = _shoal.__version__

# Submodules that `import ray` makes available as attributes in Ray.
from ray import actor, exceptions, remote_function, runtime_context, util  # noqa: E402,F401
try:
    from ray import runtime_env  # noqa: E402,F401
except ImportError:
    pass
