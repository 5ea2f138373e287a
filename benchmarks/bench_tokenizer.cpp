// GPT-2 tokenizer throughput on one thread: the tokenizer fixtures' texts (English, code,
// accents, CJK, emoji, odd whitespace, <|endoftext|>), joined by newlines and repeated to
// 4 MB, encoded in one call. benchmarks/bench_tokenizer_tiktoken.py times tiktoken on the same
// text. Prints the median seconds, tokens and MB per second.
#include <fstream>

#include <nlohmann/json.hpp>

#include <circuitry/text/bpe_tokenizer.hpp>

#include "bench_common.hpp"

int main() {
  using namespace circuitry;
  const auto tokenizer = text::ByteLevelBpeTokenizer::from_directory(CIRCUITRY_SOURCE_DIR "/data/gpt2-bpe");
  std::ifstream in(CIRCUITRY_SOURCE_DIR "/tests/fixtures/tokenizer/cases.json");
  const nlohmann::json cases = nlohmann::json::parse(in);
  std::string block;
  for (const auto& c : cases) block += c["text"].get<std::string>() + "\n";
  std::string corpus;
  while (corpus.size() < (std::size_t(4) << 20)) corpus += block;

  std::size_t tokens = 0;
  const double seconds = bench::median_seconds(5, [&] { tokens = tokenizer.encode(corpus).size(); });
  const double mb = double(corpus.size()) / 1e6;
  std::printf("GPT-2 tokenizer, one thread: %.2f MB of mixed text (%zu fixture texts, repeated) -> %zu tokens\n", mb,
              cases.size(), tokens);
  std::printf("median %.4f s, %.2f M tokens/s\n", seconds, double(tokens) / seconds / 1e6);
  std::printf("median_seconds=%.4f mb_per_second=%.2f\n", seconds, mb / seconds);
}
