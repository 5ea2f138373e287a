#pragma once
// Shared by the benchmark programs: wall-clock timing, peak memory, the GPT-2-small shape.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include <circuitry/circuitry.hpp>

namespace circuitry::bench {

/// Median wall seconds of `runs` calls of f (after one warm-up call).
template <class F>
double median_seconds(int runs, F&& f) {
  f();
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

/// Peak resident memory of this process so far, in MB.
inline double peak_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

inline ModelConfig gpt2_small_config() {
  ModelConfig c;
  c.n_layer = 12, c.n_head = 12, c.n_embd = 768, c.n_inner = 3072, c.n_positions = 1024, c.vocab_size = 50257;
  return c;
}

/// `batch` random sequences of `pos` tokens.
inline std::vector<std::vector<int>> random_sequences(std::size_t batch, std::size_t pos, std::size_t vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> tok(0, static_cast<int>(vocab) - 1);
  std::vector<std::vector<int>> s(batch, std::vector<int>(pos));
  for (auto& seq : s)
    for (auto& t : seq) t = tok(rng);
  return s;
}

/// Multiply-adds x 2 of one forward: every token through every layer, the unembedding at
/// the last position only.
inline double forward_flops(const ModelConfig& c, std::size_t B, std::size_t P, bool has_mlp) {
  const double D = double(c.n_embd), F = double(c.n_inner), tokens = double(B * P);
  const double per_token_layer = 2 * (D * 3 * D + D * D + (has_mlp ? 2 * D * F : 0.0));
  const double attention = 2.0 * 2.0 * double(B) * double(P) * double(P) * D;  // scores and mix, all heads
  return double(c.n_layer) * (tokens * per_token_layer + attention) + 2.0 * double(B) * D * double(c.vocab_size);
}

}  // namespace circuitry::bench
