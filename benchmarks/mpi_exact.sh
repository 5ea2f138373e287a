#!/usr/bin/env bash
# Exact patching over 1, 2 and 4 MPI ranks (one thread each), and whether the outputs are the same
# bytes: `bash benchmarks/mpi_exact.sh MODEL_DIR [EVERY]` scores every EVERY-th edge (default 16) of
# the model on 8 generated IOI prompts (GPT-2's vocabulary). Run by hand on an otherwise idle machine.
set -euo pipefail
model=${1:?usage: benchmarks/mpi_exact.sh MODEL_DIR [EVERY]}
every=${2:-16}
cli=${CIRCUITRY:-build/release/bin/circuitry}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Open MPI as root, ranks on this machine only, more ranks than cores allowed.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_plm_rsh_agent= OMPI_MCA_rmaps_base_oversubscribe=1
"$cli" task ioi --n 8 --seed 1 --out "$work/task.jsonl" 2>/dev/null
"$cli" attribute --model "$model" --task "$work/task.jsonl" --method eap --out "$work/eap.json"
python3 - "$work" "$every" <<'PY'
import json, sys
work, every = sys.argv[1], int(sys.argv[2])
edges = list(json.load(open(f"{work}/eap.json"))["edges"])
json.dump({"edges": edges[::every]}, open(f"{work}/subset.json", "w"))
print(f"{len(edges[::every])} of {len(edges)} edges")
PY
for ranks in 1 2 4; do
  launch=(); [ "$ranks" = 1 ] || launch=(mpirun -np "$ranks")
  start=$(date +%s.%N)
  "${launch[@]}" "$cli" attribute --model "$model" --task "$work/task.jsonl" --method exact --edges "$work/subset.json" \
    --threads 1 --out "$work/exact-$ranks.json" 2>/dev/null
  end=$(date +%s.%N)
  printf "%d ranks: %.1f s, sha256 %s\n" "$ranks" "$(awk "BEGIN { print $end - $start }")" "$(sha256sum "$work/exact-$ranks.json" | cut -c1-16)"
done
