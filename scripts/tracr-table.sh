#!/usr/bin/env bash
# The README's tracr rows of the ACDC paper's table: ROC AUC of every method against the
# canonical circuits of tracr-reverse and tracr-proportion (data/tracr/, data/ground-truth/),
# with ACDC's settings: the l2 metric over every position after BOS, its 21 thresholds
# 10^linspace(-5, -1, 21), zero and resample ablation. Usage: bash scripts/tracr-table.sh [build dir]
# Prints a Markdown table: the trapezoid AUC of each method's edge ranking and, for ACDC, also
# the pessimistic area of its own per-threshold points (as the paper reports).
set -euo pipefail
cd "$(dirname "$0")/.."
cli="${1:-build/release}/bin/circuitry"
[ -x "$cli" ] || { echo "build the CLI first: cmake --preset release && cmake --build --preset release --target circuitry_cli" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
thresholds=$(python3 -c "print(','.join('%.6g' % 10 ** (-5 + 4 * i / 20) for i in range(21)))")
methods="eap eap-ig clean-corrupted exact acdc"
printf '| task | ablation (ACDC) | edges | true |'; for m in $methods; do printf ' %s |' "$m"; done; printf ' acdc (pessimistic) |\n'
printf '|---|---|---|---|'; for m in $methods; do printf -- '---|'; done; printf -- '---|\n'
for task in reverse proportion; do
  for ablation in zero resample; do
    out="$work/$task-$ablation"
    "$cli" compare --model "data/tracr/$task" --task "data/tracr/$task/task.jsonl" --ground-truth "tracr-$task" \
      --metric l2 --acdc-metric l2 --positions all --ablation "$ablation" --thresholds "$thresholds" \
      --dtype float64 --out "$out" > /dev/null 2>&1
    python3 - "$out/compare.json" "tracr-$task" "$ablation" $methods <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
m = c["methods"]
row = [sys.argv[2], sys.argv[3], str(c["n_edges"]), str(c["n_true"])] + ["%.3f" % m[k]["auc"] for k in sys.argv[4:]]
row.append("%.3f" % m["acdc"]["auc_pessimistic"])
print("| " + " | ".join(row) + " |")
PY
  done
done
