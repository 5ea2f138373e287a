#!/usr/bin/env bash
# Installs the Debian packages circuitry needs, if any are missing (as root), or prints the
# exact apt-get line to run. Sourced by the other scripts; `bash scripts/deps.sh` alone works too.
# `bash scripts/deps.sh fuzz` adds clang and its libFuzzer runtime, which only the fuzz preset needs.
# CIRCUITRY_OPTIONAL_PACKAGES=0 leaves the optional packages out (neither installed nor mentioned).
set -euo pipefail
required=(g++ make cmake libeigen3-dev libxtensor-dev nlohmann-json3-dev doctest-dev libcli11-dev)
if [ "${1:-}" = fuzz ]; then required+=(clang libclang-rt-dev); fi
# `dot` renders circuit.svg; oneDNN runs `--dtype bfloat16` on AMX / AVX512-BF16, and its CMake
# package needs OpenCL's headers and loader beside it (only a Recommends of libdnnl-dev, which
# --no-install-recommends skips); Open MPI lets `mpirun -np N circuitry ...` split exact patching and
# ACDC over ranks. Everything else works without them: CMakeLists.txt goes on without oneDNN or MPI
# when it cannot find them, and says why.
optional=(graphviz libdnnl-dev ocl-icd-opencl-dev libopenmpi-dev openmpi-bin)
if [ "${CIRCUITRY_OPTIONAL_PACKAGES:-1}" = 0 ]; then optional=(); fi
missing=()
for pkg in "${required[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
missing_optional=()
for pkg in ${optional[@]+"${optional[@]}"}; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing_optional+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ] || [ ${#missing_optional[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "circuitry: installing ${missing[*]} ${missing_optional[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends ${missing[@]+"${missing[@]}"} ${missing_optional[@]+"${missing_optional[@]}"} >/dev/null
  elif [ ${#missing[@]} -gt 0 ]; then
    echo "circuitry: missing Debian packages; run:" >&2
    echo "  sudo apt-get install -y ${missing[*]} ${missing_optional[*]}" >&2
    exit 1
  else
    echo "circuitry: optional Debian packages missing (the build goes on without them); for all features run:" >&2
    echo "  sudo apt-get install -y ${missing_optional[*]}" >&2
  fi
fi
