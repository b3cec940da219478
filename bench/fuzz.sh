#!/usr/bin/env bash
# The longer fuzz run: each target of fuzz/ for SECONDS (default 300) on its seed corpus, through
# fuzz/run.sh, recording per target the executions, executions per second and coverage
# (libFuzzer's cov: edges and ft: features at the end of the run) in
# bench/results/fuzz_<date>.json with the machine's description. Fails like fuzz/run.sh on any
# crash or sanitizer report.
#
#   bench/fuzz.sh [seconds_per_target] [target...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-300}
shift || true
DATE=${DATE:-$(date +%Y-%m-%d)}
OUT=bench/results/fuzz_${DATE}.json
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
FUZZ_SUMMARY=$summary bash fuzz/run.sh "$SECONDS_PER_TARGET" "$@"
python3 - "$summary" "$OUT" "$SECONDS_PER_TARGET" "$DATE" <<'PY'
import json, os, platform, subprocess, sys
summary, out, seconds, date = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
clang = subprocess.run(["clang++", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
targets = []
for line in open(summary):
    name, execs, rate, cov, ft, corpus, elapsed, new = line.split()
    targets.append({"target": name, "executions": int(execs), "exec_per_sec": int(rate), "cov": int(cov),
                    "ft": int(ft), "corpus_units": int(corpus), "new_units": int(new), "seconds": int(elapsed)})
doc = {"date": date, "seconds_per_target": seconds, "cpus": os.cpu_count(), "memory_bytes": mem,
       "machine": platform.platform(), "compiler": clang,
       "flags": "-O2 -g -fsanitize=fuzzer,address,undefined", "targets": targets}
with open(out, "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
print(f"| target | executions | exec/s | cov | ft | corpus |")
print(f"| --- | --- | --- | --- | --- | --- |")
for t in targets:
    print(f"| {t['target']} | {t['executions']:,} | {t['exec_per_sec']:,} | {t['cov']} | {t['ft']} | {t['corpus_units']} |")
print(f"written to {out}")
PY
