#!/usr/bin/env bash
# The main job from a fresh clone: install what is missing, build the CLI (release), and run
# `circuitry` with no arguments on the shipped induction model. Extra arguments go to circuitry.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake --preset release -DCIRCUITRY_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build/release --target circuitry_cli -j "$(nproc)"
exec build/release/bin/circuitry "$@"
