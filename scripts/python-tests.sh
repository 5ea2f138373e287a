#!/usr/bin/env bash
# The Python package from a fresh clone: a new virtual environment, `pip install .` (which builds the
# extension against the Debian C++ packages), then its pytest suite, which compares every result with the
# command line's (it needs build/release/bin/circuitry: run scripts/test.sh first, or set CIRCUITRY_CLI).
# Installs what is missing (as root) or prints the apt-get line, as scripts/deps.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
python=/usr/bin/python3  # Debian's: the interpreter python3-dev and python3-venv belong to
missing=()
dpkg -s python3-dev >/dev/null 2>&1 || missing+=(python3-dev)
"$python" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "circuitry: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "circuitry: missing Debian packages for the Python package; run:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
venv="${CIRCUITRY_VENV:-build/python-venv}"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q ".[test]"
# The tests import the installed package, not python/circuitry in the tree.
cd python/tests
"../../$venv/bin/python" -m pytest -q "$@"
