#!/usr/bin/env bash
# A longer chaos run than CI's (tests/chaos): more raylet kills, more rounds of tasks (100 small,
# 4 with 1 MiB results, 2 nested per round), and the figures appended as JSON lines to
# bench/results/chaos-<date>.jsonl (tasks, kills, seconds, tasks per second under chaos).
#
#   bench/chaos.sh [KILLS] [PERIOD_S]      defaults: 20 kills, one every 3 s
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
out="$PWD/bench/results/chaos-$(date -u +%Y%m%d-%H%M).jsonl"
SHOAL_CHAOS_KILLS=${1:-20} SHOAL_CHAOS_PERIOD_S=${2:-3} SHOAL_CHAOS_REPORT="$out" \
  python3 -m pytest -q tests/chaos -k raylets_are_killed
cat "$out"
