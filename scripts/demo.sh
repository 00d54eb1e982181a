#!/usr/bin/env bash
# The main job: set up, build in release mode, and fine-tune the shipped base model with a
# reward that is easy to hack (brightness), with the rule-based shape checker riding along as a
# gold metric (weight 0). Writes grids, drift.png and report.html under outputs/demo. Passes of
# one group (--micro-batch-size 8) let the run measure its gradient noise scale (same results).
# A few minutes on 2 cores. Extra arguments are passed to `flowtune finetune`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release 2>&1 | tail -n 1
out=outputs/demo
if [[ -e $out/metrics.jsonl ]]; then
  old=$out.$(date +%Y%m%d-%H%M%S)
  mv "$out" "$old"
  echo "demo: moved the previous demo run to $old" >&2
fi
.build/release/flowtune finetune \
  --model models/base-s32c-distilled.safetensors \
  --prompts prompts/train.txt --eval-prompts prompts/eval.txt \
  --algo grpo --reward "brightness=1,shape-eval=0" \
  --steps 40 --lr 3e-4 --eval-every 5 --checkpoint-every 10 \
  --micro-batch-size 8 \
  --out "$out" "$@"
echo "demo: open $out/report.html (grids in $out/grids, chart $out/drift.png)" >&2
