#!/usr/bin/env bash
# The whole PAW pipeline on the CPU with tiny models (the README's main command):
#   1. synthesize FuzzyBench-style data     5. export the trained compiler
#   2. build token shards                   6. compile a held-out spec to a .paw program
#   3. pre-train the tiny interpreter       7. run the program on a few inputs
#   4. train the tiny compiler through it   8. paw eval on the held-out test set
# The interpreter is pre-trained on one set of task families ("general") and then frozen; the
# compiler is trained on other families ("tasks"), whose test split holds out both unseen inputs
# and unseen spec phrasings. Usage: configs/demo/run.sh [OUT_DIR]   (default runs/demo)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
paw=${PAW:-$root/paw}
out=${1:-$root/runs/demo}
[ -x "$paw" ] || { echo "demo: $paw not found; run make first" >&2; exit 1; }
mkdir -p "$out"
cd "$out"
t0=$(date +%s)
step() { printf '\n== [%s, %ds] %s\n' "$1" $(( $(date +%s) - t0 )) "$2"; }

general=count_words,word_position,longest_word,category_pick,topic,spam,language,filter_even,device_command,shell_command,pick_tool,confirm_needed,validate_email,time_24h
tasks=first_word,last_word,contains_word,max_number,sentiment,parity,is_question,log_severity

step 1/8 "synthesize data: $((8000+200)) general examples, $((6000+200+400)) task examples"
"$paw" data synth -o data/general --seed 11 --train 8000 --val 200 --test 0 --families "$general" --pseudo-examples 1 | tail -3
"$paw" data synth -o data/tasks --seed 12 --train 6000 --val 200 --test 400 --families "$tasks" --pseudo-examples 1 | tail -3

step 2/8 "build token shards"
for s in general/train general/val tasks/train tasks/val tasks/test; do
  "$paw" data build "data/$s.jsonl" -o "shards/$s" --quiet
done
all=data/general/train.jsonl,data/general/val.jsonl,data/tasks/train.jsonl,data/tasks/val.jsonl,data/tasks/test.jsonl
rm -rf interpreter-init compiler-init
"$paw" init --shape "$root/configs/tiny-interpreter.json" --out interpreter-init --vocab-from "$all" --seed 1
"$paw" init --shape "$root/configs/tiny-compiler.json" --out compiler-init --vocab-from "$all" --seed 2

step 3/8 "pre-train the tiny interpreter on the general families"
"$paw" train "$here/pretrain.json" --overwrite

step "4-5/8" "train the compiler through the frozen interpreter on the task families, then export it"
"$paw" train "$here/train.json" --overwrite

step 6/8 "compile held-out specs (the first test example of three families) into programs"
field() { sed -e "s/.*\"$1\":\"\([^\"]*\)\".*/\1/" "$2"; }
rm -rf programs specs.jsonl
for f in contains_word is_question parity; do
  grep -m 1 "\"family\":\"$f\"" data/tasks/test.jsonl > "spec-$f.jsonl"
  sed -e "s/}\$/,\"out\":\"$f.paw\"}/" "spec-$f.jsonl" >> specs.jsonl
done
"$paw" compile --compiler compiler-run/export --specs specs.jsonl --out-dir programs
ls -l programs

step 7/8 "run each program on a few held-out inputs of its task"
for f in contains_word is_question parity; do
  task=$(field task_id "spec-$f.jsonl")
  echo "$f: spec \"$(field spec "spec-$f.jsonl")\""
  grep -m 4 "\"task_id\":\"$task\"" data/tasks/test.jsonl > sample.jsonl
  field input sample.jsonl > sample-inputs.txt
  field output sample.jsonl > sample-expected.txt
  "$paw" run "programs/$f.paw" --interpreter interpreter-run/export --max-new 8 < sample-inputs.txt > sample-got.txt
  paste sample-inputs.txt sample-expected.txt sample-got.txt |
    awk -F'\t' '{printf "    %-40s expected %-10s got %s\n", $1, $2, $3}'
done

step 8/8 "evaluate on the held-out test set (unseen inputs and unseen spec phrasings)"
rm -f eval.json
"$paw" eval --compiler compiler-run/export --interpreter interpreter-run/export --data data/tasks/test.jsonl \
  --max-new 8 --report eval.json
echo
echo "demo finished in $(( $(date +%s) - t0 )) s; everything is in $out"
