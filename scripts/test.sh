#!/usr/bin/env bash
# Sets up and runs the whole test suite (tiny model configurations; a few minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OPENBLAS_NUM_THREADS=1
swift build --build-tests
swift test
