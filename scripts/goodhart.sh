#!/usr/bin/env bash
# The Goodhart study in miniature (docs/GOODHART.md): reward models of three sizes trained on the
# checker's labels of the caption-noise base model's samples; best-of-n against each; RL (GRPO by
# default) against a reward model with the checker riding along at weight 0; the chart of the
# gold against sqrt(KL to the base model) with Gao et al.'s forms fitted.
#
#   bash scripts/goodhart.sh [--stage rm|bon|rl|chart|all] [--sizes "rm-tiny rm-small rm-large"]
#        [--pairs N] [--rm-seed S]            reward models of N labelled pairs / training seed S
#        [--rl-rm NAME[+NAME...]] [--rm-combine mean|min|mean-std:L]  the RL run's reward model(s)
#        [--algo grpo] [--seed 1] [--beta 0] [--steps 100] [--threads T] [--out outputs/goodhart]
#        [--eval-early]                       the RL run evaluated at iterations 1, 2, 4 and 8 too
#
# A reward model is named after its size and knobs: rm-large, rm-large-p6000 (--pairs 6000),
# rm-large-seed1 (--rm-seed 1); --rl-rm takes such names (rm-large by default), joined by + for an
# ensemble. Every stage skips what is already there (a reward model, a best-of-n folder, a finished
# run), so running it again continues; a stopped RL run is resumed. The whole study, two jobs at a
# time: scripts/goodhart-study.sh. Timings and results: docs/GOODHART.md.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=all sizes="rm-tiny rm-small rm-large" pairs="" rmseed=0 rlrm=rm-large combine=mean algo=grpo seed=1 beta=0
steps=100 out=outputs/goodhart threads="" early=()
while (($#)); do
  case $1 in
    --stage) stage=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --pairs) pairs=$2; shift 2 ;;
    --rm-seed) rmseed=$2; shift 2 ;;
    --rl-rm|--rl-size) rlrm=$2; shift 2 ;;
    --rm-combine) combine=$2; shift 2 ;;
    --algo) algo=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --beta) beta=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --eval-early) early=(--eval-early); shift ;;
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
# the name of a size's reward model under this invocation's knobs
name() { local n=$1; [[ -n $pairs ]] && n+=-p$pairs; [[ $rmseed != 0 ]] && n+=-seed$rmseed; echo "$n"; }

# 1. reward models: one labelling of the data (written once, shared by every size and knob)
if run rm; then
  for size in $sizes; do
    rm=$(name "$size")
    [[ -f $out/rm/$rm.safetensors ]] && continue
    knobs=(--seed "$rmseed"); [[ -n $pairs ]] && knobs+=(--pairs "$pairs")
    $ft train-reward --prompts prompts/train.txt --base "$base" --size "$size" --data "$out/rm/data.safetensors" \
      "${knobs[@]}" --out "$out/rm/$rm.safetensors" "${thr[@]}"
  done
fi

# the folder label and the rm: paths of a reward model name, or of an ensemble A+B+C (combined by --rm-combine)
label() { local l=${1//+/-}; [[ $1 == *+* ]] && l+=-$combine; echo "$l"; }
paths() { local p="" m ms; IFS=+ read -ra ms <<<"$1"; for m in "${ms[@]}"; do p+=${p:++}$out/rm/$m.safetensors; done; echo "$p"; }

# 2. best-of-n from the base model against each reward model (or ensemble), gold = the checker
if run bon; then
  for size in $sizes; do
    rm=$size; [[ $size != *+* ]] && rm=$(name "$size")
    dir=$out/bon-$(label "$rm")
    [[ -f $dir/bon.jsonl ]] && continue
    $ft best-of-n --reward "rm:$(paths "$rm"),shape-eval=0" --rm-combine "$combine" --model "$base" \
      --prompts prompts/eval.txt --max-n 32 --out "$dir" "${thr[@]}"
  done
fi

# 3. RL against one reward model (or an ensemble), every held-out prompt x 4 seeds evaluated every 10 iterations
if run rl; then
  l=$(label "$rlrm"); [[ $beta != 0 ]] && l+=-beta$beta; ((${#early[@]})) && l+=-early
  dir=$out/rl-$algo-$l-$seed
  kl=(); [[ $beta == 0 ]] || kl=(--beta "$beta")    # 0 is flowtune's default (and AC-Flow reads no --beta)
  count=$(grep -cvE '^[[:space:]]*(#|$)' prompts/eval.txt)
  if [[ -f $dir/checkpoints/state.safetensors ]]; then
    # a stopped run continues (with its own options; only the budget may change)
    $ft finetune --resume "$dir" --steps "$steps" "${thr[@]}"
  else
    $ft finetune --model "$base" --prompts prompts/train.txt --eval-prompts prompts/eval.txt --algo "$algo" \
      --reward "rm:$(paths "$rlrm"),shape-eval=0" --rm-combine "$combine" "${kl[@]}" --seed "$seed" --steps "$steps" \
      --prompts-per-iteration 8 --group-size 16 --lr 3e-4 --eval-every 10 --eval-prompt-count "$count" --eval-per-prompt 4 \
      --checkpoint-every 10 "${early[@]}" "${thr[@]}" --out "$dir"
  fi
fi

# 4. the chart: every RL run of the study folder and every best-of-n folder
if run chart; then
  args=()
  # the seeds of one configuration (rl-ALGO-RM-SEED) share a label and are fitted together
  for d in "$out"/rl-*/; do [[ -f $d/metrics.jsonl ]] && { b=$(basename "$d"); args+=("${b%-*}=$d"); }; done
  for d in "$out"/bon-*/; do d=${d%/}; [[ -f $d/bon.jsonl ]] && args+=(--bon "best-of-n ${d#"$out"/bon-}=$d"); done
  $ft goodhart "${args[@]}" --gold shape-eval --out "$out/goodhart.png"
fi
