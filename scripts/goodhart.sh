#!/usr/bin/env bash
# The Goodhart study in miniature (docs/GOODHART.md): reward models of three sizes trained on the
# checker's labels of the caption-noise base model's samples; best-of-n against each; RL (GRPO by
# default) against a reward model with the checker riding along at weight 0; the chart of the
# gold against sqrt(KL to the base model) with Gao et al.'s forms fitted.
#
#   bash scripts/goodhart.sh [--stage rm|bon|rl|chart|all] [--sizes "rm-tiny rm-small rm-large"]
#                            [--rl-size rm-large] [--algo grpo] [--seed 1] [--steps 100] [--out outputs/goodhart]
#
# Every stage skips what is already there (a reward model, a best-of-n folder, a finished run),
# so running it again continues; a stopped RL run is resumed. Timings and results: docs/GOODHART.md.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=all sizes="rm-tiny rm-small rm-large" rlsize=rm-large algo=grpo seed=1 steps=100 out=outputs/goodhart threads=""
while (($#)); do
  case $1 in
    --stage) stage=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --rl-size) rlsize=$2; shift 2 ;;
    --algo) algo=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    *) echo "goodhart.sh: unknown option $1 (see the comment at the top of the script)" >&2; exit 64 ;;
  esac
done
base=models/base-s32c-captions.safetensors
[[ -f $base ]] || { echo "goodhart.sh: $base is missing" >&2; exit 1; }
[[ -x .build/release/flowtune ]] || swift build -c release 2>&1 | tail -n 1
ft=.build/release/flowtune
mkdir -p "$out/rm"
thr=(); [[ -n $threads ]] && thr=(--threads "$threads")
run() { [[ $stage == all || $stage == "$1" ]]; }

# 1. reward models: one labelling of the data (written once, shared by every size)
if run rm; then
  for size in $sizes; do
    [[ -f $out/rm/$size.safetensors ]] && continue
    $ft train-reward --prompts prompts/train.txt --base "$base" --size "$size" --data "$out/rm/data.safetensors" \
      --out "$out/rm/$size.safetensors" "${thr[@]}"
  done
fi

# 2. best-of-n from the base model against each reward model, gold = the checker
if run bon; then
  for size in $sizes; do
    [[ -f $out/bon-$size/bon.jsonl ]] && continue
    $ft best-of-n --reward "rm:$out/rm/$size.safetensors,shape-eval=0" --model "$base" --prompts prompts/eval.txt \
      --max-n 32 --out "$out/bon-$size" "${thr[@]}"
  done
fi

# 3. RL against one reward model, every held-out prompt x 4 seeds evaluated every 10 iterations
if run rl; then
  dir=$out/rl-$algo-$rlsize-$seed
  count=$(grep -cvE '^[[:space:]]*(#|$)' prompts/eval.txt)
  if [[ -f $dir/checkpoints/state.safetensors ]]; then
    # a stopped run continues (with its own options; only the budget may change)
    $ft finetune --resume "$dir" --steps "$steps" "${thr[@]}"
  else
    $ft finetune --model "$base" --prompts prompts/train.txt --eval-prompts prompts/eval.txt --algo "$algo" \
      --reward "rm:$out/rm/$rlsize.safetensors,shape-eval=0" --seed "$seed" --steps "$steps" \
      --prompts-per-iteration 8 --group-size 16 --lr 3e-4 --eval-every 10 --eval-prompt-count "$count" --eval-per-prompt 4 \
      --checkpoint-every 10 "${thr[@]}" --out "$dir"
  fi
fi

# 4. the chart: every RL run of the study folder and every best-of-n folder
if run chart; then
  args=()
  for d in "$out"/rl-*/; do [[ -f $d/metrics.jsonl ]] && args+=("$(basename "$d")=$d"); done
  for size in $sizes; do [[ -f $out/bon-$size/bon.jsonl ]] && args+=(--bon "best-of-n $size=$out/bon-$size"); done
  $ft goodhart "${args[@]}" --gold shape-eval --out "$out/goodhart.png"
fi
