#!/usr/bin/env bash
# The GPU suite of Shoal in one script, for a machine with a GPU (CUDA toolkit, NCCL; PyTorch for
# the Python part). Run from the repository root:
#
#   bash bench/gpu/run_gpu_suite.sh            # figures and logs land in $OUT (default: a temp dir)
#
# 1. Builds the collective library on its own (src/collective: needs only CUDA and NCCL, no gRPC
#    or Abseil) and runs its GPU test: a one-rank NCCL allreduce, two ranks on one device refused,
#    256 MiB over CUDA IPC between two processes with the device's own copy speed next to it, and
#    with two or more devices a two-rank NCCL allreduce and send/recv.
# 2. When this checkout has a full Shoal build (build/bin/shoal and build/python, from the
#    README's set-up), runs tests/integration/test_gpu.py: NCCL through shoal.util.collective,
#    two 0.5-GPU actors exchanging a 256 MiB tensor with tensor_transport="nccl" (CUDA IPC),
#    and a 0.5-GPU actor refused 80% of the card while its neighbour keeps running.
# Exit status: 0 when everything that could run passed.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$(mktemp -d /tmp/shoal-gpu-suite-XXXXXX)}
BUILD=${SHOAL_GPU_BUILD:-/tmp/shoal-gpu-build}
status=0
echo "== machine"; (nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true) | tee "$OUT/machine.txt"
echo "== collective library (standalone build)"
if cmake -S src/collective -B "$BUILD" -DCMAKE_BUILD_TYPE=Release > "$OUT/cmake.log" 2>&1 &&
   cmake --build "$BUILD" -j "$(nproc)" >> "$OUT/cmake.log" 2>&1; then
  SHOAL_GPU_LIBRARY="$BUILD/libshoal_gpu.so" "$BUILD/collective_gpu_test" | tee "$OUT/collective_gpu_test.txt"
  rc=${PIPESTATUS[0]}
  if [ "$rc" = 77 ]; then echo "(skipped: no CUDA device)"; elif [ "$rc" != 0 ]; then status=1; fi
else
  echo "build failed:"; tail -30 "$OUT/cmake.log"; status=1
fi
echo "== Python GPU tests"
if [ -x build/bin/shoal ] && PYTHONPATH=build/python python3 -c "import shoal._core" 2>/dev/null; then
  SHOAL_GPU_FIGURES="$OUT/gpu_figures.json" python3 -m pytest -q -rs tests/integration/test_gpu.py 2>&1 |
    tee "$OUT/test_gpu.txt"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
else
  echo "skipped: no full Shoal build in this checkout (build/bin/shoal, build/python)" | tee "$OUT/test_gpu.txt"
fi
echo "== results in $OUT"
exit $status
