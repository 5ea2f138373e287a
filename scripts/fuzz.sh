#!/usr/bin/env bash
# Runs every libFuzzer target of tests/fuzz for SECONDS each (default 60): installs clang if
# missing (scripts/deps.sh fuzz), builds the fuzz preset, seeds each corpus from tests/fixtures,
# tests/fuzz/seeds and tests/fuzz/regressions, and prints the executions per harness. Exits
# non-zero on the first finding: the input is left in build/fuzz/findings/ (commit it, once
# fixed, under tests/fuzz/regressions/<harness>/ so the ordinary test suite replays it).
# Usage: bash scripts/fuzz.sh [SECONDS] [HARNESS...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(safetensors checkpoint shard_index task scores circuit ground_truth tokenizer gguf sentencepiece_model)
bash scripts/deps.sh fuzz
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$(nproc)" --target "${harnesses[@]/#/fuzz_}"

build=build/fuzz
seeds=$build/seeds
rm -rf "$seeds" && mkdir -p "$seeds" "$build/findings"
fixture_dirs=(tests/fixtures/gpt2-tiny tests/fixtures/gpt2-tiny-f16 tests/fixtures/gpt2-tiny-bf16 tests/fixtures/attn-only tests/fixtures/gpt2-small3
             tests/fixtures/tl-gelu-new tests/fixtures/tl-lnpre tests/fixtures/tl-nonorm-relu data/tracr/reverse data/tracr/proportion
             tests/fixtures/hf-pythia tests/fixtures/hf-llama-gqa tests/fixtures/hf-qwen2)
for h in "${harnesses[@]}"; do mkdir -p "$seeds/$h" "$build/corpus/$h"; done
i=0
for d in "${fixture_dirs[@]}"; do
  i=$((i + 1))
  [ -d "$seeds/safetensors" ] && [ -f "$d/model.safetensors" ] && cp "$d/model.safetensors" "$seeds/safetensors/$i.safetensors"
  if [ -d "$seeds/checkpoint" ] && [ -f "$d/config.json" ] && [ -f "$d/model.safetensors" ]; then
    { cat "$d/config.json"; printf '\n--- model.safetensors ---\n'; cat "$d/model.safetensors"; } > "$seeds/checkpoint/$i"
  fi
  if [ -d "$seeds/task" ]; then for t in "$d"/*.jsonl; do [ -f "$t" ] && cp "$t" "$seeds/task/$i-$(basename "$t")"; done; fi
done
[ -d "$seeds/sentencepiece_model" ] && for f in tests/fixtures/tokenizer/*/tokenizer.model; do cp "$f" "$seeds/sentencepiece_model/$(basename "$(dirname "$f")").model"; done
[ -d "$seeds/gguf" ] && for f in tests/fixtures/gguf-*/*.gguf; do cp "$f" "$seeds/gguf/$(basename "$(dirname "$f")").gguf"; done
# The index of the sharded fixture, whose shards the shard_index harness reads.
[ -d "$seeds/shard_index" ] && cp tests/fixtures/hf-llama-sharded/model.safetensors.index.json "$seeds/shard_index/"
if [ -d "$seeds/ground_truth" ]; then
  cp tests/fixtures/ground-truth/*.json "$seeds/ground_truth/"
  cp data/ground-truth/*.json "$seeds/ground_truth/"
fi
for h in "${harnesses[@]}"; do
  for extra in tests/fuzz/seeds/$h tests/fuzz/regressions/$h; do
    [ -d "$extra" ] && cp "$extra"/* "$seeds/$h/" 2>/dev/null || true
  done
done

status=0
summary=""
for h in "${harnesses[@]}"; do
  log=$build/fuzz_$h.log
  echo "fuzz_$h: $seconds s" >&2
  # The first folder collects new inputs; the second only seeds. A finding stops the run.
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     "$build/tests/fuzz/fuzz_$h" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$build/findings/$h-" "$build/corpus/$h" "$seeds/$h" >"$log" 2>&1; then
    result=ok
  else
    result="FINDING (see $log and $build/findings/)"
    status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  summary+=$(printf '%-14s %12s executions in %s s  %s' "$h" "$runs" "$seconds" "$result")$'\n'
done
printf '%s' "$summary"
exit $status
