#!/usr/bin/env bash
# Sets up and runs the whole test suite (tiny model configurations; a few minutes on 2 cores).
# The kernel and model tests run on every kernel path the CPU supports (AVX-512 and OpenBLAS
# on an AVX-512 CPU) within the one run. FLOWTUNE_SLOW_TESTS=1 adds the long RL and
# pretraining runs (CI sets it). The CLI tests (bad-input corpus, kill -9 faults) run the
# flowtune binary of the debug build and of the release build, so both are built first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OPENBLAS_NUM_THREADS=1
swift build -c release
swift build --build-tests
swift test --skip-build
