#!/usr/bin/env bash
# Runs flowtune's benchmark and the PyTorch peer (shared/peer/torch_grpo.py) on this machine,
# at 1 and 2 threads, one after the other, and keeps the raw output under outputs/perf/.
# The peer needs a Python environment with torch and numpy:
#   python3 -m venv VENV && VENV/bin/pip install torch numpy     (a large download)
# Usage: scripts/compare_peer.sh VENV PATH/TO/torch_grpo.py
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:?usage: $0 VENV PATH/TO/torch_grpo.py}
peer=${2:?usage: $0 VENV PATH/TO/torch_grpo.py}
swift build -c release 2>&1 | tail -n 1
mkdir -p outputs/perf
for threads in 2 1; do
  echo "== flowtune, $threads thread(s)" >&2
  .build/release/flowtune bench --json --threads "$threads" | tee "outputs/perf/flowtune-$threads.jsonl"
  echo "== peer, $threads thread(s)" >&2
  "$venv/bin/python" "$peer" --threads "$threads" | tee "outputs/perf/peer-$threads.txt"
done
