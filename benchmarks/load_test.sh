#!/usr/bin/env bash
# Load test, run by hand, not in CI: how the benchmarks slow down when other
# programs keep the cores busy, as a build or a browser does on a laptop.
#
#   benchmarks/load_test.sh [BENCH_DIR] [--loads "0 1 2"] [--threads "1 2"] [--max-busy SECONDS]
#
# For each load N (number of busy loops of its own, default 0, 1 and 2), it starts N processes
# that spin for at most --max-busy seconds (default 900), runs bench_forward, bench_eap and
# bench_exact (from BENCH_DIR, default build/release/benchmarks) with 1 and 2 threads,
# and stops its busy loops: always, also on Ctrl-C or an error (the trap below). It then prints
# one row per benchmark and load: the time of each thread count, the busy/idle slowdown of each,
# and the 2-thread/1-thread ratio. The goal: under load, 2 threads take at most 1.2x the
# time of 1 thread and at most 2x their idle time.
#
# The benchmarks are called with no arguments and read through their last line of key=value
# figures: a key ending in "seconds" is a time; a key "X_per_second" is a rate, whose inverse is
# used as the time (ratios are what matter). The wall time of the whole process is shown too.
set -euo pipefail

bench_dir=build/release/benchmarks
loads="0 1 2"
thread_counts="1 2"
max_busy=900
while [[ $# -gt 0 ]]; do
  case "$1" in
    --loads) loads="$2"; shift 2 ;;
    --threads) thread_counts="$2"; shift 2 ;;
    --max-busy) max_busy="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "load_test.sh: unknown option $1" >&2; exit 2 ;;
    *) bench_dir="$1"; shift ;;
  esac
done
benches="bench_forward bench_eap bench_exact"
for b in $benches; do
  [[ -x "$bench_dir/$b" ]] || { echo "load_test.sh: $bench_dir/$b not found (build the benchmarks, or pass their folder)" >&2; exit 2; }
done

# The busy loops: each is its own process (a shell spinning on a builtin), ended by `timeout`
# after max_busy seconds even if this script is killed with SIGKILL and its trap never runs.
busy_pids=()
stop_busy() {
  local pid
  for pid in "${busy_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${busy_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  busy_pids=()
}
trap stop_busy EXIT
trap 'stop_busy; exit 130' INT TERM
start_busy() {
  local i
  for ((i = 0; i < $1; ++i)); do
    timeout "$max_busy" bash -c 'while :; do :; done' &
    busy_pids+=($!)
  done
  sleep 1  # let the scheduler see them as running before timing starts
}

# time_of LINE: the time figure of a benchmark's last key=value line (see the header).
time_of() {
  local kv key value
  for kv in $1; do
    key=${kv%%=*} value=${kv#*=}
    if [[ $key == *seconds && $key != *_per_second* ]]; then echo "$value"; return; fi
    if [[ $key == *_per_second ]]; then awk -v r="$value" 'BEGIN { printf "%.6g", 1 / r }'; return; fi
  done
  echo "load_test.sh: no time in '$1'" >&2
  exit 1
}

declare -A figure wall
for load in $loads; do
  start_busy "$load"
  for b in $benches; do
    for t in $thread_counts; do
      start=$(date +%s.%N)
      out=$(CIRCUITRY_NUM_THREADS=$t OMP_NUM_THREADS=$t "$bench_dir/$b")
      end=$(date +%s.%N)
      last=$(grep '=' <<<"$out" | tail -n 1)
      figure[$b,$load,$t]=$(time_of "$last")
      wall[$b,$load,$t]=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
      echo "load $load, $b, $t thread(s): $last (process ${wall[$b,$load,$t]} s)" >&2
    done
  done
  stop_busy
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '\n%-14s %-5s' benchmark load
for t in $thread_counts; do printf ' %12s %9s' "time ${t}t" "busy/idle"; done
printf ' %8s\n' "2t/1t"
first_load=${loads%% *}
for b in $benches; do
  for load in $loads; do
    printf '%-14s %-5s' "$b" "$load"
    for t in $thread_counts; do
      printf ' %12s %9s' "${figure[$b,$load,$t]}" "$(ratio "${figure[$b,$load,$t]}" "${figure[$b,$first_load,$t]}")"
    done
    if [[ -n ${figure[$b,$load,1]:-} && -n ${figure[$b,$load,2]:-} ]]; then
      printf ' %8s' "$(ratio "${figure[$b,$load,2]}" "${figure[$b,$load,1]}")"
    fi
    printf '\n'
  done
done
echo "(time: the benchmark's seconds, or the inverse of its rate; busy/idle against load $first_load)"
