#!/usr/bin/env bash
# Sets up, builds in release mode and runs the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release
mkdir -p outputs
.build/release/flowtune render --prompts prompts/eval.txt --per-prompt 6 --out outputs/shapes-eval.png
.build/release/flowtune check-data --prompts prompts/eval.txt --per-prompt 8
echo "wrote outputs/shapes-eval.png" >&2
