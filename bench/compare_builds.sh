#!/usr/bin/env bash
# Runs the hot-path benchmarks of two builds back to back, alternating, so that "did it get
# slower?" is answered on the same machine in the same run:
#
#   bench/compare_builds.sh BASE_REPO NEW_REPO [ROUNDS]
#
# Each repo must have been built (build/bin, build/python). For each round it runs, for BASE then
# NEW: shoal-bench-tasks (sync round trips, async batches), shoal-bench-actors (1:1 sync/async
# calls) and the Python microbenchmark (tasks, actor calls, put/get), each against its own private
# local cluster. JSON goes to bench/results/compare-<date>/; a summary table is printed with
# medians (single runs on a small VM vary by +-50%: use 8 rounds or more).
set -euo pipefail
BASE=$(cd "$1" && pwd)
NEW=$(cd "$2" && pwd)
ROUNDS=${3:-2}
OUT="$(cd "$(dirname "$0")" && pwd)/results/compare-$(date -u +%Y%m%d-%H%M)"
mkdir -p "$OUT"
for round in $(seq 1 "$ROUNDS"); do
  # ABBA: which build runs first alternates, and each run starts after a pause, so that the
  # previous run's cluster shutting down is not charged to the next one (on a 2-core VM that
  # alone moved single runs by 2x).
  sides="base new"
  [ $((round % 2)) = 0 ] && sides="new base"
  for side in $sides; do
    repo=$BASE
    [ "$side" = new ] && repo=$NEW
    echo "== round $round: $side ($repo)"
    sleep "${PAUSE_S:-3}"
    "$repo/build/bin/shoal-bench-tasks" --sync 2000 --async-batches 5 --large 50 --large-batch 50 \
      --json "$OUT/tasks-$side-$round.json" >/dev/null || echo "warning: shoal-bench-tasks ($side) exited $?"
    sleep "${PAUSE_S:-3}"
    "$repo/build/bin/shoal-bench-actors" --json "$OUT/actors-$side-$round.json" >/dev/null ||
      echo "warning: shoal-bench-actors ($side) exited $?"
    if [ -z "${SKIP_PYTHON:-}" ]; then  # SKIP_PYTHON=1: a build without the Python module
      sleep "${PAUSE_S:-3}"
      PYTHONPATH="$repo/build/python" python3 "$repo/bench/python_microbenchmark.py" --duration 1.5 \
        --json "$OUT/python-$side-$round.json" >/dev/null
    fi
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import glob, json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
values = {}  # name -> side -> round -> value
for side in ("base", "new"):
    for path in glob.glob(os.path.join(out, f"*-{side}-*.json")):
        kind, _, rnd = os.path.basename(path)[:-5].split("-")
        for r in json.load(open(path)).get("results", []):
            name = f"{kind}: {r.get('name', r.get('shape'))}"
            value = r.get("value", r.get("tasks_per_s", r.get("calls_per_s")))
            if isinstance(value, (int, float)):
                values.setdefault(name, {}).setdefault(side, {})[int(rnd)] = value
lines = ["| benchmark | base (median of rounds) | new | new/base, median of the rounds' ratios | rounds |",
         "| --- | --- | --- | --- | --- |"]
for name in sorted(values):
    b, n = values[name].get("base", {}), values[name].get("new", {})
    both = sorted(set(b) & set(n))
    if not both:
        continue
    ratio = statistics.median(n[r] / b[r] for r in both)
    lines.append(f"| {name} | {statistics.median(b.values()):,.1f} | {statistics.median(n.values()):,.1f} | "
                 f"{ratio:.2f} | {len(both)} |")
table = "\n".join(lines)
print(table)
open(os.path.join(out, "summary.md"), "w").write(table + "\n")
PY
