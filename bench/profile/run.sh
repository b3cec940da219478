#!/usr/bin/env bash
# Where one Python call's microseconds go: each shape (sync task, sync actor call) under a
# system-wide `perf record` (then broken down by part) and `perf stat` (context switches), on
# a fresh local cluster. Needs perf and the build (build/python).
#   bench/profile/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
S=${1:-6}
OUT=/tmp/prof
mkdir -p "$OUT"
wait_go() { for _ in $(seq 1 120); do [ -f "$OUT/go" ] && return 0; sleep 0.5; done; echo "no start" >&2; return 1; }
for shape in task actor; do
  rm -f "$OUT/go"
  python3 call_profile.py "$shape" "$S" > "$OUT/$shape.json" 2>/dev/null &
  wait_go; sleep 0.5
  perf record -a -F 1999 -o "$OUT/$shape.data" -- sleep "$S" 2>/dev/null
  wait
  python3 breakdown.py "$OUT/$shape.data" "$OUT/$shape.json" "$S"
  rm -f "$OUT/go"
  python3 call_profile.py "$shape" "$S" > "$OUT/$shape-cs.json" 2>/dev/null &
  wait_go; sleep 0.5
  perf stat -a -e context-switches -x, -o "$OUT/$shape-cs.txt" -- sleep "$S"
  wait
  python3 - "$OUT/$shape-cs.json" "$OUT/$shape-cs.txt" "$S" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
switches = [int(l.split(",")[0]) for l in open(sys.argv[2]) if "context-switches" in l][0]
calls = r["calls"] * float(sys.argv[3]) / r["wall_s"]
print(f"  context switches per call (whole machine): {switches / calls:.1f}")
PY
done
