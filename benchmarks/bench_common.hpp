#pragma once
// Shared by the benchmark programs: wall-clock timing, peak memory, the model shapes they run
// (--arch gpt2-small | pythia-160m | llama-1b-shape, random weights) and the token counts
// (--batch B --pos P).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
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

/// Pythia-160m (EleutherAI/pythia-160m's config.json): GPT-NeoX, parallel residual, rotary on a quarter of each head.
inline ModelConfig pythia_160m_config() {
  ModelConfig c;
  c.n_layer = 12, c.n_head = 12, c.n_embd = 768, c.n_inner = 3072, c.n_positions = 2048, c.vocab_size = 50304;
  c.normalization = "LN", c.act_fn = "gelu", c.positional = "rotary", c.rotary_dim = 16, c.rotary_base = 10000;
  c.parallel_attn_mlp = true, c.tie_word_embeddings = false;
  return c;
}

/// Llama 3.2 1B's shape (meta-llama/Llama-3.2-1B): 16 layers, 32 query heads sharing 8 key/value
/// heads, SwiGLU MLP of 8192, a 128,256-token vocabulary tied to the unembedding.
inline ModelConfig llama_1b_config() {
  ModelConfig c;
  c.n_layer = 16, c.n_head = 32, c.n_kv_head = 8, c.head_dim = 64, c.n_embd = 2048, c.n_inner = 8192;
  c.n_positions = 2048, c.vocab_size = 128256, c.layer_norm_epsilon = 1e-5;
  c.normalization = "RMS", c.act_fn = "silu", c.gated_mlp = true, c.positional = "rotary", c.rotary_base = 500000;
  c.attn_qkv_bias = c.attn_out_bias = c.mlp_bias = false, c.tie_word_embeddings = true;
  return c;
}

/// The command line every benchmark takes: --arch NAME, --batch B, --pos P.
struct Options {
  std::string arch = "gpt2-small";
  std::size_t batch = 32, pos = 16;

  static Options parse(int argc, char** argv, std::size_t batch = 32, std::size_t pos = 16) {
    Options o;
    o.batch = batch, o.pos = pos;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      const bool has_value = i + 1 < argc;
      if (a == "--arch" && has_value) o.arch = argv[++i];
      else if (a == "--batch" && has_value) o.batch = std::strtoul(argv[++i], nullptr, 10);
      else if (a == "--pos" && has_value) o.pos = std::strtoul(argv[++i], nullptr, 10);
      else {
        std::fprintf(stderr, "usage: %s [--arch gpt2-small|pythia-160m|llama-1b-shape] [--batch B] [--pos P]\n", argv[0]);
        std::exit(2);
      }
    }
    if (o.batch == 0 || o.pos == 0) {
      std::fprintf(stderr, "--batch and --pos must be positive\n");
      std::exit(2);
    }
    return o;
  }
};

/// Calls f(model) with a float32 model of random weights of the named shape.
template <class F>
void with_model(const std::string& arch, F&& f) {
  if (arch == "gpt2-small") f(Model<GPT2, float>::random(gpt2_small_config(), 1));
  else if (arch == "pythia-160m") f(Model<Pythia, float>::random(pythia_160m_config(), 1));
  else if (arch == "llama-1b-shape") f(Model<Llama, float>::random(llama_1b_config(), 1));
  else {
    std::fprintf(stderr, "unknown --arch %s (gpt2-small, pythia-160m, llama-1b-shape)\n", arch.c_str());
    std::exit(2);
  }
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
  const double D = double(c.n_embd), F = double(c.n_inner), tokens = double(B * P), A = double(c.d_attn());
  const double mlp = has_mlp ? (c.gated_mlp ? 3.0 : 2.0) * D * F : 0.0;
  const double per_token_layer = 2 * (D * double(c.qkv_width()) + A * D + mlp);
  const double attention = 2.0 * 2.0 * double(B) * double(P) * double(P) * A;  // scores and mix, all heads
  return double(c.n_layer) * (tokens * per_token_layer + attention) + 2.0 * double(B) * D * double(c.n_outputs());
}

}  // namespace circuitry::bench
