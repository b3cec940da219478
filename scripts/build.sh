#!/usr/bin/env bash
# Configures and builds Shoal into build/ (binaries in build/bin/).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" >build-configure.log 2>&1 || {
    cat build-configure.log >&2; echo "[build] cmake configure failed" >&2; exit 1; }
fi
# Two cores and gRPC headers: more than two jobs mostly adds memory pressure.
ninja -C build -j "${JOBS:-$(nproc)}"
