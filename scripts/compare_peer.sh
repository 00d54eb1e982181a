#!/usr/bin/env bash
# Runs flowtune's benchmark and the PyTorch peer (shared/peer/torch_grpo.py) on this machine,
# at 2 and 1 threads, one after the other, and keeps the raw output under outputs/perf/.
# With `avx2`, flowtune runs its AVX2 kernels (FLOWTUNE_KERNELS=avx2) and the peer is held to
# AVX2 too (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS in its environment
# only): the comparison for CPUs without AVX-512, on any machine. With `compile`, the peer runs
# under torch.compile (inductor) as well, after its eager run; held to AVX2, inductor's own vector
# code is held to 256 bits too (torch._inductor.config.cpp.simdlen = 256): left at the CPU's
# AVX-512 beside AVX2 ATen, its compiled network crashes (SIGBUS/SIGSEGV) at 2 threads.
# The peer needs a Python environment with torch and numpy:
#   python3 -m venv VENV && VENV/bin/pip install torch numpy     (a large download)
# Usage: scripts/compare_peer.sh VENV PATH/TO/torch_grpo.py [avx2] [compile]
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: $0 VENV PATH/TO/torch_grpo.py [avx2] [compile]"
venv=${1:?$usage}
peer=${2:?$usage}
shift 2
flowtune_env=() peer_env=() tag="" compile=0
for word in "$@"; do
  case $word in
    avx2)
      flowtune_env=(FLOWTUNE_KERNELS=avx2)
      peer_env=(ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2)
      tag="-avx2" ;;
    compile) compile=1 ;;
    *) echo "compare_peer: after the peer, only avx2 and compile, got '$word'" >&2; exit 64 ;;
  esac
done
# The compiled peer: inductor's vector width follows the ISA the peer is held to.
simdlen=None
[[ -n $tag ]] && simdlen=256
compiled_peer() {
  env "${peer_env[@]}" "$venv/bin/python" -c '
import runpy, sys
import torch._inductor.config as inductor
inductor.cpp.simdlen = '"$simdlen"'
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")' "$peer" --compile "$@"
}
swift build -c release 2>&1 | tail -n 1
mkdir -p outputs/perf
grep -m1 "model name" /proc/cpuinfo >&2
for threads in 2 1; do
  echo "== flowtune${tag}, $threads thread(s)" >&2
  env "${flowtune_env[@]}" .build/release/flowtune bench --json --threads "$threads" | tee "outputs/perf/flowtune$tag-$threads.jsonl"
  echo "== peer${tag}, $threads thread(s)" >&2
  env "${peer_env[@]}" "$venv/bin/python" "$peer" --threads "$threads" | tee "outputs/perf/peer$tag-$threads.txt"
  if ((compile)); then
    echo "== peer${tag} under torch.compile, $threads thread(s)" >&2
    compiled_peer --threads "$threads" | tee "outputs/perf/peer-compiled$tag-$threads.txt"
  fi
done
