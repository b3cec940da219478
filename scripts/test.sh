#!/usr/bin/env bash
# Installs what is needed, builds, and runs every test: C++ unit tests (CTest), a short run of
# each fuzz target (fuzz/run.sh), the Python integration tests (pytest) that start real
# clusters on loopback, and the PyTorch tests of shoal.train in their own virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# setup.sh installed redis-server: a Redis test that cannot find it fails instead of skipping.
export SHOAL_REQUIRE_REDIS=1
bash scripts/build.sh
echo "== C++ tests (ctest)"
ctest --test-dir build --output-on-failure -j 2
# Each fuzz target on its seed corpus for FUZZ_SECONDS (10) seconds, clang build included:
# about 1.5 minutes on 2 cores, the clang build (20-50 s from scratch) included (fuzz/README.md).
echo "== fuzz targets (libFuzzer, ${FUZZ_SECONDS:-10} s each)"
bash fuzz/run.sh "${FUZZ_SECONDS:-10}"
# --capture=sys: pytest captures Python's output only, so what native code writes to the process's
# stderr (a gRPC or absl message before an abort, the core's warnings) reaches this log even
# when the test process dies with it.
echo "== integration tests (pytest)"
python3 -m pytest -q --capture=sys tests/integration
echo "== chaos tests (pytest, bounded: tests/chaos)"
python3 -m pytest -q --capture=sys tests/chaos
# tests/integration/test_torch_train.py skipped above (no torch in the main environment); it runs
# here in a virtualenv with torch and lightning (about 1.5 minutes, the install included).
bash scripts/test_torch.sh
