#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/build.sh; a no-op when up to date) and runs each one on its seed
# corpus for N seconds (default 10). Exits non-zero, naming the target and the input saved, on
# any crash, failed invariant, timeout, leak or sanitizer report.
#
#   fuzz/run.sh [seconds_per_target] [target...]      e.g. fuzz/run.sh 60 store_protocol
#   fuzz/run.sh 0                                     replays the seed corpora only
#   FUZZ_SUMMARY=FILE fuzz/run.sh ...                 also writes one line per target to FILE:
#       <target> <executions> <exec/s> <cov> <ft> <corpus units> <seconds> <new units>
#
# Inputs the run discovers go to build-fuzz/runs/<target>/corpus, not to the repository; a
# crashing input is saved in build-fuzz/runs/<target>/ (reproduce with
# build-fuzz/bin/<target>_fuzzer FILE; once fixed, add it to fuzz/corpus/<target>/).
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-10}
shift || true
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
ALL_TARGETS=(store_protocol store_stream websocket job_record runtime_env http_auth zip_archive object_chunk)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")

bash fuzz/build.sh || { echo "[fuzz] build failed" >&2; exit 1; }

# Sanitizer reports end the run: UBSan is built without recovery, ASan halts, leaks are checked
# at each input's end by libFuzzer.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

failed=()
for t in "${TARGETS[@]}"; do
  bin="$BUILD_DIR/bin/${t}_fuzzer"
  seeds="fuzz/corpus/$t"
  work="$BUILD_DIR/runs/$t"
  [ -x "$bin" ] || { echo "[fuzz] no such target: $t ($bin)" >&2; failed+=("$t"); continue; }
  [ -d "$seeds" ] || { echo "[fuzz] no seed corpus: $seeds" >&2; failed+=("$t"); continue; }
  rm -rf "$work"
  mkdir -p "$work/corpus"
  if [ "$SECONDS_PER_TARGET" -eq 0 ]; then
    limit=(-runs=0)
  else
    limit=(-max_total_time="$SECONDS_PER_TARGET")
  fi
  dict=()
  case $t in job_record|runtime_env) dict=(-dict=fuzz/json.dict) ;; esac
  start=$(date +%s)
  # The outer timeout only guards against a hang outside libFuzzer's own limits.
  timeout -k 10 $((SECONDS_PER_TARGET + 300)) "$bin" "${limit[@]}" "${dict[@]}" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" "$seeds" >"$work/log" 2>&1
  rc=$?
  elapsed=$(( $(date +%s) - start ))
  if [ $rc -ne 0 ] || grep -qE "runtime error:|ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|invariant failed" "$work/log"; then
    echo "[fuzz] $t FAILED (exit $rc) after ${elapsed}s; log: $work/log" >&2
    grep -E "invariant failed|ERROR: |runtime error:|SUMMARY:|Test unit written to" "$work/log" | head -n 20 >&2
    failed+=("$t")
    continue
  fi
  stat() { sed -n "s/^stat::$1: *//p" "$work/log" | tail -n 1; }
  last=$(grep -E "^#[0-9]+" "$work/log" | tail -n 1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last"); ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  execs=$(stat number_of_executed_units); rate=$(stat average_exec_per_sec); new=$(stat new_units_added)
  printf '[fuzz] %-15s ok: %s runs (%s/s), cov %s, ft %s, corpus %s (+%s new), %ss\n' \
    "$t" "${execs:-0}" "${rate:-0}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${new:-0}" "$elapsed"
  if [ -n "${FUZZ_SUMMARY:-}" ]; then
    echo "$t ${execs:-0} ${rate:-0} ${cov:-0} ${ft:-0} ${corp:-0} $elapsed ${new:-0}" >>"$FUZZ_SUMMARY"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "[fuzz] FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "[fuzz] all ${#TARGETS[@]} targets ran clean"
