"""The chaos suite reuses the integration tests' cluster harness (tests/integration/conftest.py),
loaded under its own module name so that the two conftest files do not collide."""
import importlib.util
import os
import sys

_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration", "conftest.py")
_spec = importlib.util.spec_from_file_location("shoal_harness", _PATH)
harness = importlib.util.module_from_spec(_spec)
sys.modules["shoal_harness"] = harness
_spec.loader.exec_module(harness)

# Everything the harness defines, fixtures included: when tests/integration and tests/chaos are
# collected in one run, `from conftest import ...` in either directory may find this module.
globals().update({name: value for name, value in vars(harness).items() if not name.startswith("__")})
