#!/usr/bin/env bash
# Sets up and runs the whole test suite (tiny model configurations; a few minutes on 2 cores).
# On a CPU with AVX-512 the suite runs twice: with flowtune's own kernels (the default there)
# and with FLOWTUNE_GEMM=openblas, so that both paths stay tested.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OPENBLAS_NUM_THREADS=1
swift build --build-tests
swift test --skip-build
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
  echo "== again on the OpenBLAS path (FLOWTUNE_GEMM=openblas)" >&2
  FLOWTUNE_GEMM=openblas swift test --skip-build
fi
