#!/usr/bin/env bash
# One ACDC pass over 1, 2 and 4 MPI ranks (one thread each: the pass's windows over the ranks), and
# whether the outputs are the same bytes: `bash benchmarks/mpi_acdc.sh MODEL TASK [TOP] [TAU]` runs
# the pass at threshold TAU (default 0.01) on the TOP edges (default 1000) of EAP's scores, as a
# user runs ACDC on a model too large for a full pass. Run by hand on an otherwise idle machine.
set -euo pipefail
model=${1:?usage: benchmarks/mpi_acdc.sh MODEL TASK [TOP] [TAU]}
task=${2:?usage: benchmarks/mpi_acdc.sh MODEL TASK [TOP] [TAU]}
top=${3:-1000}
tau=${4:-0.01}
cli=${CIRCUITRY:-build/release/bin/circuitry}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Open MPI as root, ranks on this machine only, more ranks than cores allowed.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_plm_rsh_agent= OMPI_MCA_rmaps_base_oversubscribe=1
"$cli" attribute --model "$model" --task "$task" --method eap --out "$work/eap.json" 2>/dev/null
"$cli" prune --scores "$work/eap.json" --top-n "$top" --no-prune --out "$work/top.json"
for ranks in 1 2 4; do
  launch=(); [ "$ranks" = 1 ] || launch=(mpirun -np "$ranks")
  start=$(date +%s.%N)
  "${launch[@]}" "$cli" acdc --model "$model" --task "$task" --threshold "$tau" --edges "$work/top.json" --threads 1 \
    --out "$work/acdc-$ranks" 2>/dev/null
  end=$(date +%s.%N)
  runs=$(python3 -c "import json,sys; c=json.load(open(sys.argv[1]))['circuits'][0]; print(c['n_edges'], c['runs'])" "$work/acdc-$ranks/acdc.json")
  printf "%d ranks: %.1f s, edges kept and runs: %s, circuit sha256 %s\n" "$ranks" "$(awk "BEGIN { print $end - $start }")" "$runs" \
    "$(sha256sum "$work/acdc-$ranks/circuit-00.json" | cut -c1-16)"
done
