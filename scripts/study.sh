#!/usr/bin/env bash
# The over-optimisation study of docs/STUDY.md: three sweeps on the shipped base model.
# Usage: bash scripts/study.sh [MODEL]   (default models/base-s32c-distilled.safetensors); writes
# outputs/study/{align,hack,guard}/ (each a sweep: sweep.md, sweep.jsonl, frontier.png, run folders).
# Resumable: run it again after an interruption. About 40 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/base-s32c-distilled.safetensors}
swift build -c release 2>&1 | tail -n 1
ft=.build/release/flowtune
common=(--model "$model" --steps 30 --eval-every 5 --checkpoint-every 10 --jobs 2 --threads 2)
# (i) alignment: RL on shape-eval itself; does held-out shape-eval rise?
$ft sweep "${common[@]}" --reward shape-eval --vary algo=grpo,grpo-guard,acflow --vary lr=1e-4,3e-4 --seeds 3 \
  --proxy-gains 0.02,0.05,0.1 --out outputs/study/align
# (ii) over-optimisation: a hackable proxy (brightness), gold at equal proxy for the three algorithms
$ft sweep "${common[@]}" --reward brightness=1,shape-eval=0 --lr 3e-4 --vary algo=grpo,grpo-guard,acflow --seeds 3 \
  --proxy-gains 0.05,0.1,0.2,0.3 --out outputs/study/hack
# (iii) GRPO-Guard's claims: more off-policy updates (4 micro-batches: 3 of 4 off-policy) and the ratio statistics
$ft sweep "${common[@]}" --reward brightness=1,shape-eval=0 --lr 3e-4 --vary algo=grpo,grpo-guard --vary micro-batches=2,4 \
  --seeds 3 --proxy-gains 0.05,0.1,0.2,0.3 --out outputs/study/guard
echo "study: outputs/study/{align,hack,guard}/sweep.md and frontier.png" >&2
