#!/usr/bin/env bash
# The full-size `paw train` run on one GPU: random Qwen3-4B-shaped compiler (trained) and
# Qwen3-0.6B-shaped interpreter (frozen) of the real vocabulary, synthetic shards, device cuda.
# Prints from log.jsonl the steady-state step time, the host data time inside it, the bare step
# (the rest: the device work), the wall time per step (everything: data, logging, progress) and
# its overhead over the bare step, examples/s, tokens/s and MFU, the same with one checkpoint
# save and one evaluation (64 validation examples: loss and greedy exact match, on the GPU)
# amortised per 500 steps, the evaluation time, the checkpoint save time (one save, at the end: a 4B compiler
# with its optimizer state is ~50 GB), and the load time of a resume;
# compare with `paw bench paw` at the same batch shape, in the same device call.
# Usage (repository root, after make): tests/gpu/train_fullsize.sh [WORKDIR] [STEPS]
# WORKDIR needs ~70 GB free (models, shards, one checkpoint); the lent machine's disk had less
# once (2026-11-23), so a WORKDIR under /dev/shm (RAM) may be the place there.
# PAW (the binary), COMPILER_SHAPE, INTERP_SHAPE, DEVICE, EXAMPLES and SHAPED override the defaults (a dry run of the
# script on the CPU: COMPILER_SHAPE=configs/tiny-compiler.json INTERP_SHAPE=configs/tiny-interpreter.json
# DEVICE=cpu EXAMPLES=200 tests/gpu/train_fullsize.sh build/dry 6).
# SHAPED=1 (the default on the GPU) trains on examples of exactly the shape `paw bench paw` times
# (compiler 320 tokens + the 64 prefix positions, interpreter 192 prompt + 192 target tokens), so
# that the two compare step for step; the script then runs `paw bench paw` itself and prints the
# ratio. SHAPED=0 uses synthetic FuzzyBench tasks (short, varied examples).
set -euo pipefail
W=${1:-build/fullsize}
STEPS=${2:-30}
CS=${COMPILER_SHAPE:-configs/qwen3-4b.json}
IS=${INTERP_SHAPE:-configs/qwen3-0.6b.json}
DEVICE=${DEVICE:-cuda}
EXAMPLES=${EXAMPLES:-4000}
SHAPED=${SHAPED:-$([ "$DEVICE" = cuda ] && echo 1 || echo 0)}
paw=${PAW:-./paw}
rm -rf "$W" && mkdir -p "$W"
t() { date +%s.%N; }
"$paw" init --shape "$CS" --out "$W/compiler" --dtype bfloat16 --seed 1 >/dev/null
"$paw" init --shape "$IS" --out "$W/interpreter" --dtype bfloat16 --seed 2 >/dev/null
if [ "$SHAPED" = 1 ]; then
  # Words "a" are one token each. The templates (data/template.c) add 21 tokens to the compiler
  # prompt and 1 (<|im_end|>) after the pseudo-program, 21 to the interpreter prompt and 1 to the
  # target: spec 198 + pseudo 100 -> 320 compiler tokens; pseudo 100 + input 71 -> a 192-token
  # prompt; output 191 -> a 192-token target.
  mkdir -p "$W/data"
  python3 - "$W/data/train.jsonl" "$EXAMPLES" <<'PY'
import json, sys
w = lambda n: " ".join(["a"] * n)
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(json.dumps({"spec": w(198), "pseudo_program": w(100), "input": w(71), "output": w(191),
                            "task_id": f"shaped{i}", "family": "shaped"}) + "\n")
PY
else
  "$paw" data synth -o "$W/data" --train "$EXAMPLES" --val 0 --test 0 --seed 5 >/dev/null
fi
"$paw" data build "$W/data/train.jsonl" -o "$W/shards" --quiet
# The run directory takes one checkpoint (~50 GB for a 4B compiler with its AdamW state) and the
# export (~8 GB): when the disk under $W has less free, and /dev/shm (RAM) has it, it goes there.
RUN=${RUN_DIR:-$W/run}
need=$((60 * 1000 * 1000 * 1000))
free_w=$(df -B1 --output=avail "$W" | tail -1)
free_shm=$(df -B1 --output=avail /dev/shm 2>/dev/null | tail -1 || echo 0)
if [ -z "${RUN_DIR:-}" ] && [ "$DEVICE" = cuda ] && [ "$free_w" -lt "$need" ] && [ "${free_shm:-0}" -gt "$need" ]; then
  RUN=/dev/shm/paw-fullsize-run
  rm -rf "$RUN"
  echo "run directory: $RUN ($((free_w / 1000000000)) GB free on the disk, $((free_shm / 1000000000)) GB in /dev/shm)"
fi
cat >"$W/train.json" <<JSON
{"mode": "paw", "device": "$DEVICE", "compiler": "$W/compiler", "interpreter": "$W/interpreter",
 "train_data": "$W/shards", "out_dir": "$RUN", "steps": $STEPS, "max_batch_examples": 8,
 "batch_tokens": 1000000, "lr": 1e-5, "warmup_steps": 2, "log_every": 1, "save_every": $STEPS,
 "keep_last": 1, "recompute": true, "seed": 1,
 "val_data": "$W/shards", "eval_every": $STEPS, "eval_examples": 64, "max_new_tokens": 32}
JSON
t0=$(t)
"$paw" train "$W/train.json" 2>"$W/train.err" || { tail -5 "$W/train.err"; exit 1; }
t1=$(t)
# Resume from the final checkpoint (no further steps, so no second checkpoint): log.jsonl records
# the load time ("load_s": reading the checkpoint and moving it to the device) and the save ("save_s").
"$paw" train "$W/train.json" --resume 2>"$W/resume.err" || { tail -5 "$W/resume.err"; exit 1; }
# The bare step benchmark at the same shape, same call (GPU only).
BENCH=none
if [ "$DEVICE" = cuda ] && [ "$SHAPED" = 1 ]; then
  "$paw" bench paw --iters 5 >"$W/bench.txt" 2>&1 && BENCH=$(grep -E "^\| fwd \+ bwd \+ AdamW" "$W/bench.txt" | head -1 | cut -d'|' -f3 | tr -d ' ')
fi
python3 - "$RUN/log.jsonl" "$t0" "$t1" "$STEPS" "$BENCH" <<'PY'
import json, sys, statistics
log, t0, t1, steps = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
bench_ms = float(sys.argv[5]) if sys.argv[5] not in ("", "none") else None
rows = [json.loads(l) for l in open(log)]
run = [r for r in rows if "step_s" in r and r["step"] <= steps]
steady = run[3:]  # after warm-up
step_s = statistics.median(r["step_s"] for r in steady)
data_s = statistics.median(r.get("data_s", 0.0) for r in steady)
bare_s = statistics.median(r["step_s"] - r.get("data_s", 0.0) for r in steady)  # device work of the step
# Everything between two logged steps (data, logging, progress) from the loop's own clock.
wall_s = (steady[-1]["wall_s"] - run[2]["wall_s"]) / len(steady) if "wall_s" in run[-1] else step_s
saves = [r["save_s"] for r in rows if r.get("event") == "checkpoint"]
evals = [r["seconds"] for r in rows if r.get("event") == "eval"]  # at step 0 and at the end: 64 examples each
loads = [r["load_s"] for r in rows if r.get("event") == "resume"]
save = max(saves) if saves else 0.0
ev = evals[-1] if evals else 0.0  # the one at the end: the one at step 0 includes first-time setup
every = save / 500 + ev / 500  # a checkpoint and an evaluation (64 examples, 32 new tokens) every 500 steps
print("| full-size paw train | median step s | data s in it | bare step s | wall s per step | over bare | tokens/s "
      "| MFU | examples/s (wall) | examples/s, a save and an eval every 500 steps | save s | eval s | load s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
print(f"| {steps} steps | {step_s:.3f} | {data_s:.3f} | {bare_s:.3f} | {wall_s:.3f} | {100 * (wall_s / bare_s - 1):+.1f}% | "
      f"{statistics.median(r['tokens_per_s'] for r in steady):.0f} | "
      f"{100*statistics.median(r['mfu'] for r in steady):.1f}% | {8 / wall_s:.2f} | {8 / (wall_s + every):.2f} | "
      f"{save:.1f} | {ev:.1f} | {loads[-1] if loads else float('nan'):.1f} |")
tok = statistics.median(r["tokens_per_s"] * r["step_s"] for r in steady)
if "gpu_peak_gib" in run[-1]:
    print(f"GPU memory high-water mark: {run[-1]['gpu_peak_gib']:.1f} GiB")
print(f"tokens per step: {tok:.0f} (the bench shape: 8 x (384 + 384) = 6144)")
if bench_ms:
    print(f"paw bench paw, same shape, same call: {bench_ms:.1f} ms/step; paw train wall per step is "
          f"{100 * (wall_s / (bench_ms / 1e3) - 1):+.1f}% of it (issue target: within 10%), "
          f"{100 * ((wall_s + every) / (bench_ms / 1e3) - 1):+.1f}% with a save and an evaluation every 500 steps")
PY
