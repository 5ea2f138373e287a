#!/usr/bin/env bash
# Every test from a fresh clone: install what is missing, configure (release preset, or the one
# named as the first argument: release, debug, asan), build, run CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
bash scripts/deps.sh
cmake --preset "$preset" -DCIRCUITRY_BUILD_TESTS=ON -DCIRCUITRY_BUILD_BENCHMARKS=ON  # benchmarks are built (not run) so they cannot rot
cmake --build --preset "$preset" -j "$(nproc)"
ctest --preset "$preset" -j 1
