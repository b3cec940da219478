#!/usr/bin/env bash
# Builds the libFuzzer targets into build-fuzz/ (binaries in build-fuzz/bin/): a second CMake
# build with clang, SHOAL_FUZZING=ON, the libraries they need instrumented with
# -fsanitize=fuzzer-no-link,address,undefined and the targets linked with
# -fsanitize=fuzzer,address,undefined. The main build (g++, build/) is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
command -v clang++ >/dev/null || { echo "[fuzz] clang++ is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  launcher=()
  if command -v ccache >/dev/null; then launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  mkdir -p "$BUILD_DIR"
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHOAL_FUZZING=ON \
    "${launcher[@]}" >"$BUILD_DIR/configure.log" 2>&1 || {
    cat "$BUILD_DIR/configure.log" >&2; echo "[fuzz] cmake configure failed" >&2; exit 1; }
fi
# Two cores are shared with other work: two jobs at most unless told otherwise.
ninja -C "$BUILD_DIR" -j "${JOBS:-2}" shoal_fuzzers
