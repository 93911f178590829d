#!/usr/bin/env bash
# Per-kernel GPU time of one step of each benchmark, from Nsight Compute (one metric, no replay):
# a table of the kernels that take the most time, summed over the step. For finding where a
# benchmark's time goes (clocks locked to base by ncu: shares, not speeds); the benchmarks
# themselves (run_device.sh bench) give the figures.
# Usage (repository root, on a GPU machine, after make): tests/gpu/profile.sh [paw bench gpu args...]
set -uo pipefail
cd "$(dirname "$0")/../.."
LOGS="${OUT:-build/gpu-logs}"
mkdir -p "$LOGS"
profile() {
  local tag=$1; shift
  ncu --metrics gpu__time_duration.sum --csv --print-units base "$@" \
    >"$LOGS/ncu-$tag.csv" 2>"$LOGS/ncu-$tag.err" || { tail -5 "$LOGS/ncu-$tag.err"; return; }
  python3 tests/gpu/ncu_table.py "$tag" "$LOGS/ncu-$tag.csv"
}
if [ $# -gt 0 ]; then profile custom ./paw bench gpu "$@"; exit; fi
profile frozen-0.6b ./paw bench gpu --shape 0.6b --B 16 --T 512 --mode frozen --warmup 0 --iters 1
profile full-4b ./paw bench gpu --shape 4b --B 8 --T 384 --mode full --warmup 0 --iters 1
profile decode-0.6b ./paw bench gpu --shape 0.6b --T 512 --mode decode --new 8 --warmup 0 --iters 1
