#!/usr/bin/env bash
# One call on a GPU machine: build, run the GPU tests, then the benchmarks; a short table last.
# Usage (repository root): tests/gpu/run_device.sh [quick | bench | train | multi | tune]
#   quick: build + make test-gpu + compute-sanitizer memcheck of it;  bench: build + the
#   benchmarks and the PyTorch baselines;  train: build + the full-size paw train run;
#   multi: build (also with NCCL) + tests/gpu/multi_rank.sh;  tune: paw bench paw with partial
#   recomputation (--keep);  no argument: quick, then bench.
# A device call is limited to 10 minutes: run the stages as separate calls when they do not fit.
# Full logs go to $OUT (when set) or build/gpu-logs.
set -uo pipefail
cd "$(dirname "$0")/../.."
# ../shared does not travel to the device: carry the tokenizer in .bench (see README, GPU).
[ -z "${PAW_TOKENIZER:-}" ] && [ -e .bench/tokenizer.json ] && export PAW_TOKENIZER=$PWD/.bench/tokenizer.json
LOGS="${OUT:-build/gpu-logs}"
mkdir -p "$LOGS"
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv >"$LOGS/gpu.txt" 2>&1
# On a Hopper GPU only its own code is compiled (half the nvcc time of the default sm_90a + sm_80,
# out of the call's 10 minutes); elsewhere the Makefile's default.
ARCH=()
[ "$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1)" = 9.0 ] &&
  ARCH=("CU_ARCH=-gencode=arch=compute_90a,code=sm_90a")
make -j"$(nproc)" "${ARCH[@]}" paw build/test_gpu >"$LOGS/build.txt" 2>&1 || { tail -40 "$LOGS/build.txt"; exit 1; }
stage=${1:-}
if [ "$stage" = multi ]; then
  make -j"$(nproc)" "${ARCH[@]}" NCCL=1 BUILD=build-nccl build-nccl/paw >"$LOGS/build-nccl.txt" 2>&1 || { tail -40 "$LOGS/build-nccl.txt"; exit 1; }
  # The full-size step with and without its gradient sums through NCCL (one rank), interleaved.
  mpirun --allow-run-as-root -np 1 build-nccl/paw bench paw --nccl --iters 8 2>&1 | tee "$LOGS/bench_nccl.txt" |
    grep -E "^\| fwd|overhead|rror"
  # Every NCCL operation on device buffers, results checked (one rank: the calls, not the links).
  mpirun --allow-run-as-root -np 1 build-nccl/paw bench comm --device cuda --mib 256 2>&1 |
    tee "$LOGS/bench_comm_nccl.txt" | grep -E "^\| [a-z]|correct|WRONG|rror"
  # The host MPI collectives (what "gpu_comm": "mpi" stages its device buffers through).
  mpirun --allow-run-as-root --oversubscribe -np 2 ./paw bench comm --mib 256 2>&1 | tee "$LOGS/bench_comm.txt" |
    grep -E "^\| [a-z]|correct|WRONG"
  tests/gpu/multi_rank.sh build/multirank 2>&1 | tee "$LOGS/multi_rank.txt" | grep -E "^\||overhead|failed| vs "
  exit "${PIPESTATUS[0]}"
fi
if [ "$stage" = tune ]; then
  # Partial recomputation: some compiler layers (0.33 GB each at this batch) and all interpreter
  # layers keep their activations, as far as the memory goes; the plain recompute step first.
  echo "| step | ms/step | examples/s | tokens/s | TFLOP/s | MFU | peak alloc GiB | device used GiB | loss |"
  for keep in 0 8 16 24; do
    ki=$([ "$keep" = 0 ] && echo 0 || echo 28)
    ./paw bench paw --keep "$keep" --keep-interp "$ki" 2>&1 | tee -a "$LOGS/tune.txt" | grep -E "^\| fwd|rror" |
      sed "s/^| fwd/| keep $keep+$ki: fwd/"
  done
  exit 0
fi
if [ "$stage" = train ]; then
  tests/gpu/train_fullsize.sh build/fullsize 30 2>&1 | tee "$LOGS/train.txt" | grep -E "^\||^examples"
  exit "${PIPESTATUS[0]}"
fi
tests_rc=0
if [ "$stage" != bench ]; then
  ./build/test_gpu >"$LOGS/test_gpu.txt" 2>&1
  tests_rc=$?
  grep -E "^FAIL" "$LOGS/test_gpu.txt" | head -40
  grep -E "^gpu runner:" "$LOGS/test_gpu.txt"
  tail -1 "$LOGS/test_gpu.txt"
  if [ "$stage" = quick ]; then
    timeout 300 compute-sanitizer --tool memcheck --print-limit 20 ./build/test_gpu >"$LOGS/memcheck.txt" 2>&1
    grep -E "ERROR SUMMARY" "$LOGS/memcheck.txt" || tail -3 "$LOGS/memcheck.txt"
  fi
fi
if [ "$stage" = quick ]; then exit $tests_rc; fi
bench() { ./paw bench gpu "$@" 2>&1 | tee -a "$LOGS/bench.txt" | grep -E "^\| [a-z]|^full:|^decode:" ; }
: >"$LOGS/bench.txt"
echo "| mode | ms/step | tokens/s | TFLOP/s | MFU | peak alloc GiB | device used GiB | loss |"
bench --shape 0.6b --B 16 --T 512 --mode frozen          # issue figure (a)
bench --shape 4b --B 8 --T 384 --mode full                 # issue figure (b)
bench --shape 4b --B 8 --T 384 --mode full --recompute
bench --shape 0.6b --B 8 --T 1024 --mode frozen
bench --shape 0.6b --B 8 --T 1024 --mode full
bench --shape 0.6b --B 8 --T 1024 --mode full --recompute
bench --shape 0.6b --T 512 --mode decode --new 256
bench --shape 0.6b --T 512 --mode decode --new 256 --fused   # norms and SwiGLU inside the products
bench --shape 0.6b --T 512 --mode decode --new 256 --pdl     # programmatic dependent launch
bench --shape 0.6b --T 512 --mode decode --new 256 --fused --pdl
bench --shape 4b --B 4 --T 1024 --mode frozen
bench --shape 4b --B 2 --T 1024 --mode full --recompute
bench --shape 4b --T 512 --mode decode --new 128
bench --shape 4b --T 512 --mode decode --new 128 --fused
bench --shape 4b --T 512 --mode decode --new 128 --fused --pdl
echo "| decoding | rows/s | generated tokens/s | ms per batch |"
bench --shape 0.6b --mode batch --B 32 --T 256 --new 64 --iters 2
bench --shape 0.6b --mode batch --B 32 --T 256 --new 64 --iters 2 --fused   # LoRA side paths: 8 launches a layer, not 14
grep -E "^speed-up" "$LOGS/bench.txt"
echo "| step | ms/step | examples/s | tokens/s | TFLOP/s | MFU | peak alloc GiB | device used GiB | loss |"
# Without recompute the full-size step needs more than 80 GB (the 4B compiler's AdamW state alone is 64).
./paw bench paw --recompute 2>&1 | tee -a "$LOGS/bench.txt" | grep -E "^\| fwd"
# The PyTorch baselines of ../shared/bench (carried as .bench), same call.
if [ -d .bench ]; then
  python3 .bench/paw_torch_step.py --B 8 2>&1 | tail -1 | tee -a "$LOGS/bench.txt"
  python3 .bench/hf_baseline.py 2>&1 | tail -5 | tee -a "$LOGS/bench.txt"
fi
exit $tests_rc
