#!/usr/bin/env bash
# bf16 against fp32 (docs/PERFORMANCE.md, "bf16"): 2 000 pretraining steps of s32c in each precision
# from seeds 0 and 1 (two at a time, one thread each), their loss curves on one chart, and the
# rule-based checker's table of the shipped model sampled in each precision. Needs a CPU with
# AVX512-BF16 (flowtune says so otherwise).
#
#   bash scripts/precision.sh [--steps 2000] [--per-prompt 16] [--out outputs/precision]
#
# Each pretraining resumes where it stopped (--resume) and is skipped once finished.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=2000 perprompt=16 out=outputs/precision
while (($#)); do
  case $1 in
    --steps) steps=$2; shift 2 ;;
    --per-prompt) perprompt=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "precision.sh: unknown option $1 (see the comment at the top of the script)" >&2; exit 64 ;;
  esac
done
[[ -x .build/release/flowtune ]] || swift build -c release 2>&1 | tail -n 1
ft=.build/release/flowtune
mkdir -p "$out"
pretrain() {   # precision seed
  local m=$out/$1-seed$2.safetensors
  if [[ -f $m && -n $(tail -n 1 "${m%.safetensors}.pretrain.jsonl" 2>/dev/null | grep "\"step\": $steps,") ]]; then return; fi
  local resume=(); [[ -f ${m%.safetensors}.state.safetensors ]] && resume=(--resume)
  OPENBLAS_NUM_THREADS=1 $ft pretrain --config s32c --steps "$steps" --seed "$2" --precision "$1" --threads 1 \
    --checkpoint-every 500 --out "$m" "${resume[@]}" 2> "$out/$1-seed$2.log"
}
for seed in 0 1; do
  pretrain fp32 $seed & pretrain bf16 $seed & wait
done
$ft plot-loss "$out"/{fp32,bf16}-seed{0,1}.pretrain.jsonl --names "fp32 seed 0,bf16 seed 0,fp32 seed 1,bf16 seed 1" \
  --from-step 500 --title "s32c pretraining, fp32 and bf16 (mean loss of each 50 steps)" --out "$out/loss.png"
for p in fp32 bf16; do
  for cfg in 1 3; do
    $ft evaluate --model models/base-s32c-distilled.safetensors --prompts prompts/eval.txt --per-prompt "$perprompt" \
      --cfg $cfg --precision $p --json > "$out/evaluate-$p-cfg$cfg.json"
  done
done
grep -m1 "model name" /proc/cpuinfo
for f in "$out"/evaluate-*.json; do echo "$(basename "$f" .json): $(cat "$f")"; done
