#!/usr/bin/env bash
# The README's table: ROC AUC of every method against planted-circuit models of several sizes
# and shapes (circuitry planted + circuitry compare). Usage: bash scripts/planted-auc-table.sh [build dir]
# Prints a Markdown table; each cell is the trapezoid AUC (ACDC: of its sweep score).
set -euo pipefail
cd "$(dirname "$0")/.."
cli="${1:-build/release}/bin/circuitry"
[ -x "$cli" ] || { echo "build the CLI first: cmake --preset release && cmake --build --preset release --target circuitry_cli" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
methods="eap eap-ig clean-corrupted exact acdc"
printf '| planted model | edges | true |'; for m in $methods; do printf ' %s |' "$m"; done; printf '\n'
printf '|---|---|---|'; for m in $methods; do printf -- '---|'; done; printf '\n'
for spec in "chain 2 4" "fork 2 4" "induction 2 4" "chain 3 4" "fork 3 8" "induction 3 8" "induction 4 8"; do
  set -- $spec
  dir="$work/$1-$2-$3"
  "$cli" planted --shape "$1" --layers "$2" --heads "$3" --seed 1 --out "$dir" > /dev/null
  "$cli" compare --model "$dir" --task "$dir/task.jsonl" --ground-truth "$dir/ground-truth.json" --out "$dir/cmp" > /dev/null 2>&1
  python3 - "$dir/cmp/compare.json" "$1 ${2}L x ${3}H" $methods <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
row = [sys.argv[2], str(c["n_edges"]), str(c["n_true"])] + ["%.3f" % c["methods"][m]["auc"] for m in sys.argv[3:]]
print("| " + " | ".join(row) + " |")
PY
done
