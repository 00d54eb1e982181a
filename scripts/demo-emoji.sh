#!/usr/bin/env bash
# The second world: real pictures. Sets up and builds, builds data/emoji from Debian's Noto
# Color Emoji font when it is missing (scripts/emoji-dataset.sh), and fine-tunes the shipped
# emoji model (models/emoji-s32c.safetensors, pretrained on that folder) with GRPO against
# saturation, a reward easy to hack. The gold metrics compare with the folder's held-out
# emoji, which the model never saw: the Frechet distance to them, diversity, w2 and the KL to
# the base model. Writes grids, drift.png and report.html under outputs/emoji-demo.
# Extra arguments are passed to `flowtune finetune`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release 2>&1 | tail -n 1
[[ -d data/emoji ]] || bash scripts/emoji-dataset.sh data/emoji
out=outputs/emoji-demo
if [[ -e $out/metrics.jsonl ]]; then
  old=$out.$(date +%Y%m%d-%H%M%S)
  mv "$out" "$old"
  echo "demo-emoji: moved the previous run to $old" >&2
fi
.build/release/flowtune finetune \
  --model models/emoji-s32c.safetensors --data data/emoji \
  --algo grpo --reward "saturation=1,jpeg-compressibility=0" \
  --steps 40 --lr 3e-4 --eval-every 5 --checkpoint-every 10 \
  --out "$out" "$@"
echo "demo-emoji: open $out/report.html (grids in $out/grids, chart $out/drift.png)" >&2
