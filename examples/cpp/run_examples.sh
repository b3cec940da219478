#!/usr/bin/env bash
# Runs the C++ examples: first hello world on its own (shoal::Init starts and stops a local
# cluster for it), then all five against a three-node cluster on this machine (a head with
# 2 CPUs and two workers, one of them with 2 declared GPUs). Exits non-zero if any fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${SHOAL_BIN_DIR:-build/bin}
SHOAL=$BIN/shoal
if [[ -z "${SHOAL_TMPDIR:-}" ]]; then
  export SHOAL_TMPDIR=$(mktemp -d /tmp/shoal-cpp-examples.XXXXXX)
  REMOVE_TMPDIR=1
fi
unset SHOAL_ADDRESS RAY_ADDRESS
PORT=${SHOAL_EXAMPLE_PORT:-6391}

echo "== hello world, with a cluster of its own"
"$BIN/shoal-example-hello"

cleanup() {
  "$SHOAL" stop >/dev/null 2>&1 || true
  if [[ -n "${REMOVE_TMPDIR:-}" ]]; then rm -rf "$SHOAL_TMPDIR"; fi
}
trap cleanup EXIT
echo "== a three-node cluster on 127.0.0.1:$PORT"
"$SHOAL" start --head --port "$PORT" --num-cpus 2 --num-gpus 0 >/dev/null
"$SHOAL" start --address "127.0.0.1:$PORT" --num-cpus 4 --num-gpus 2 >/dev/null
"$SHOAL" start --address "127.0.0.1:$PORT" --num-cpus 2 >/dev/null
"$SHOAL" status --address "127.0.0.1:$PORT"
export SHOAL_ADDRESS="127.0.0.1:$PORT"
for example in hello parallel-sum task-graph gpu-fraction actor-counter; do
  echo "== shoal-example-$example"
  "$BIN/shoal-example-$example"
done
echo "== shoal stop"
cleanup
trap - EXIT
