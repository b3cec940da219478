#!/usr/bin/env bash
# The PyTorch tests of shoal.train (TorchTrainer, the Lightning integration): torch and
# lightning come from PyPI into a virtualenv of their own, build/torchvenv (made once, then
# reused; it sees the system's packages too), so that the main test environment stays without
# them. PyPI's only Linux torch wheel is the CUDA one: about 3 GB to download and 5 GB on disk,
# 70 s to install on a 2-core machine with a fast link (measured 2026-12-06). Needs a build
# (scripts/build.sh) and scripts/setup.sh's packages.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=build/torchvenv
if ! "$VENV/bin/python" -c "import torch, lightning" >/dev/null 2>&1; then
  echo "== making $VENV with torch and lightning (PyPI)"
  python3 -m venv --system-site-packages "$VENV"
  "$VENV/bin/python" -m pip install -q torch lightning
fi
echo "== PyTorch tests of shoal.train ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
"$VENV/bin/python" -m pytest -q --capture=sys tests/integration/test_torch_train.py
