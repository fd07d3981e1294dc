#!/bin/sh
# run_fuzzer.sh FUZZER SEED_CORPUS SECONDS: fuzzes for SECONDS from the checked-in seeds, writing
# new inputs to a scratch directory (never into the repository), and prints the exec count.
set -eu
fuzzer=$1 seeds=$2 seconds=$3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$scratch/" "$scratch" "$seeds" 2>"$scratch/log" || { tail -50 "$scratch/log"; exit 1; }
grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$scratch/log"
grep -E '^#[0-9]+ +DONE' "$scratch/log" || true
