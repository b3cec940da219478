#!/usr/bin/env bash
# Shoal's main job: a three-node cluster on this machine — a head (2 CPUs, no GPU) and two
# workers (one with 2 declared GPUs and a label, one with a custom resource) — shown with
# `shoal status`, then the C++ examples run against it (tasks, refs between tasks, 0.5-GPU
# tasks sharing devices), the Python quickstart and a training run with a tuning search
# (examples/python), the cluster shown again with everything free, and stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin
SHOAL=$BIN/shoal
export SHOAL_TMPDIR=${SHOAL_TMPDIR:-$(mktemp -d /tmp/shoal-example.XXXXXX)}
PORT=${SHOAL_EXAMPLE_PORT:-6390}
unset RAY_ADDRESS

cleanup() { "$SHOAL" stop >/dev/null 2>&1 || true; }
trap cleanup EXIT

echo "== starting the head on 127.0.0.1:$PORT"
"$SHOAL" start --head --port "$PORT" --num-cpus 2 --num-gpus 0 --dashboard-port "${SHOAL_EXAMPLE_DASHBOARD_PORT:-0}"
echo "== starting two worker nodes"
"$SHOAL" start --address "127.0.0.1:$PORT" --num-cpus 2 --num-gpus 2 --labels '{"zone":"a"}'
"$SHOAL" start --address "127.0.0.1:$PORT" --num-cpus 1 --resources '{"accel_tpu": 4}'
echo "== shoal status"
"$SHOAL" status --address "127.0.0.1:$PORT"

export SHOAL_ADDRESS="127.0.0.1:$PORT"
for example in hello parallel-sum task-graph gpu-fraction actor-counter; do
  echo "== shoal-example-$example"
  "$BIN/shoal-example-$example"
done

echo "== examples/python/quickstart.py"
PYTHONPATH=build/python python3 examples/python/quickstart.py

echo "== examples/python/train_and_tune.py (2 data-parallel workers with checkpoints; ASHA over 8 trials)"
PYTHONPATH=build/python python3 examples/python/train_and_tune.py "$SHOAL_TMPDIR/runs"

echo "== shoal job submit (through the head's dashboard; the job holds 1 CPU while it runs)"
"$SHOAL" job submit --entrypoint-num-cpus 1 --runtime-env-json '{"env_vars": {"GREETING": "hello"}}' \
  -- 'echo "$GREETING from a Shoal job on the GCS at $SHOAL_ADDRESS"'
"$SHOAL" job list

echo "== shoal status after the examples (everything free again)"
sleep 1  # let each raylet report its freed resources
"$SHOAL" status --address "127.0.0.1:$PORT"
echo "== shoal stop"
"$SHOAL" stop
trap - EXIT
