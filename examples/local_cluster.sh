#!/usr/bin/env bash
# A three-node Shoal cluster on this machine: head (2 CPUs, no GPU) and two workers
# (one with 2 declared GPUs, one with a custom resource), shown and then stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
SHOAL=build/bin/shoal
export SHOAL_TMPDIR=${SHOAL_TMPDIR:-$(mktemp -d /tmp/shoal-example.XXXXXX)}
PORT=${SHOAL_EXAMPLE_PORT:-6390}

cleanup() { "$SHOAL" stop >/dev/null 2>&1 || true; }
trap cleanup EXIT

echo "== starting the head on 127.0.0.1:$PORT"
"$SHOAL" start --head --port "$PORT" --num-cpus 2 --num-gpus 0
echo "== starting two worker nodes"
"$SHOAL" start --address "127.0.0.1:$PORT" --num-cpus 2 --num-gpus 2 --labels '{"zone":"a"}'
"$SHOAL" start --address "127.0.0.1:$PORT" --num-cpus 1 --resources '{"accel_tpu": 4}'
echo "== shoal status"
"$SHOAL" status --address "127.0.0.1:$PORT"
echo "== shoal stop"
"$SHOAL" stop
trap - EXIT
