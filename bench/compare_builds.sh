#!/usr/bin/env bash
# Runs the hot-path benchmarks of two builds back to back, alternating, so that "did it get
# slower?" is answered on the same machine in the same run:
#
#   bench/compare_builds.sh BASE_REPO NEW_REPO [ROUNDS]
#
# Each repo must have been built (build/bin, build/python). For each round it runs, for BASE then
# NEW: shoal-bench-tasks (sync round trips, async batches), shoal-bench-actors (1:1 sync/async
# calls) and the Python microbenchmark (tasks, actor calls, put/get), each against its own private
# local cluster. JSON goes to bench/results/compare-<date>/; a summary table is printed.
set -euo pipefail
BASE=$(cd "$1" && pwd)
NEW=$(cd "$2" && pwd)
ROUNDS=${3:-2}
OUT="$(cd "$(dirname "$0")" && pwd)/results/compare-$(date -u +%Y%m%d-%H%M)"
mkdir -p "$OUT"
for round in $(seq 1 "$ROUNDS"); do
  for side in base new; do
    repo=$BASE
    [ "$side" = new ] && repo=$NEW
    echo "== round $round: $side ($repo)"
    "$repo/build/bin/shoal-bench-tasks" --sync 2000 --async-batches 5 --large 50 --large-batch 50 \
      --json "$OUT/tasks-$side-$round.json" >/dev/null || echo "warning: shoal-bench-tasks ($side) exited $?"
    "$repo/build/bin/shoal-bench-actors" --json "$OUT/actors-$side-$round.json" >/dev/null ||
      echo "warning: shoal-bench-actors ($side) exited $?"
    if [ -z "${SKIP_PYTHON:-}" ]; then  # SKIP_PYTHON=1: a build without the Python module
      PYTHONPATH="$repo/build/python" python3 "$repo/bench/python_microbenchmark.py" --duration 1.5 \
        --json "$OUT/python-$side-$round.json" >/dev/null
    fi
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import glob, json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = {}
for side in ("base", "new"):
    for path in glob.glob(os.path.join(out, f"*-{side}-*.json")):
        kind = os.path.basename(path).split("-")[0]
        for r in json.load(open(path)).get("results", []):
            name = f"{kind}: {r.get('name', r.get('shape'))}"
            value = r.get("value", r.get("tasks_per_s", r.get("calls_per_s")))
            if isinstance(value, (int, float)):
                rows.setdefault(name, {}).setdefault(side, []).append(value)
lines = ["| benchmark | base (mean of rounds) | new | new/base |", "| --- | --- | --- | --- |"]
for name in sorted(rows):
    b, n = rows[name].get("base"), rows[name].get("new")
    if not b or not n:
        continue
    mb, mn = statistics.mean(b), statistics.mean(n)
    lines.append(f"| {name} | {mb:,.1f} | {mn:,.1f} | {mn / mb:.2f} |")
table = "\n".join(lines)
print(table)
open(os.path.join(out, "summary.md"), "w").write(table + "\n")
PY
