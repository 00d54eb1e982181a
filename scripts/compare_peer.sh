#!/usr/bin/env bash
# Runs flowtune's benchmark and the PyTorch peer (shared/peer/torch_grpo.py) on this machine,
# at 2 and 1 threads, one after the other, and keeps the raw output under outputs/perf/.
# With a third argument `avx2`, flowtune runs its AVX2 kernels (FLOWTUNE_KERNELS=avx2) and the
# peer is held to AVX2 too (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS in
# its environment only): the comparison for CPUs without AVX-512, on any machine.
# The peer needs a Python environment with torch and numpy:
#   python3 -m venv VENV && VENV/bin/pip install torch numpy     (a large download)
# Usage: scripts/compare_peer.sh VENV PATH/TO/torch_grpo.py [avx2]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:?usage: $0 VENV PATH/TO/torch_grpo.py [avx2]}
peer=${2:?usage: $0 VENV PATH/TO/torch_grpo.py [avx2]}
isa=${3:-}
flowtune_env=() peer_env=() tag=""
if [[ $isa == avx2 ]]; then
  flowtune_env=(FLOWTUNE_KERNELS=avx2)
  peer_env=(ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2)
  tag="-avx2"
elif [[ -n $isa ]]; then
  echo "compare_peer: the third argument can only be avx2, got '$isa'" >&2; exit 64
fi
swift build -c release 2>&1 | tail -n 1
mkdir -p outputs/perf
grep -m1 "model name" /proc/cpuinfo >&2
for threads in 2 1; do
  echo "== flowtune${tag}, $threads thread(s)" >&2
  env "${flowtune_env[@]}" .build/release/flowtune bench --json --threads "$threads" | tee "outputs/perf/flowtune$tag-$threads.jsonl"
  echo "== peer${tag}, $threads thread(s)" >&2
  env "${peer_env[@]}" "$venv/bin/python" "$peer" --threads "$threads" | tee "outputs/perf/peer$tag-$threads.txt"
done
