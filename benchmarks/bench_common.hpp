#pragma once
// Shared by the benchmark programs: wall-clock timing, peak memory, the model shapes they run
// (--arch gpt2-small | pythia-160m | llama-1b-shape, random weights), the scalar (--dtype
// float32 | float64 | bfloat16, the last a float32 model with bfloat16 GEMMs) and the token
// counts (--batch B --pos P).
#include <sys/resource.h>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <string>
#include <type_traits>
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

/// The float32 rate (GFLOP/s) that the pool's threads reach right now on register-only
/// multiply-adds: on every thread 12 independent chains of fused multiply-adds of the widest
/// vectors this build has (AVX-512: 16 lanes, AVX2: 8), best of three tries. It is the ceiling
/// a benchmark's GFLOP/s are a fraction of: the nominal peak is cores x FMA units x lanes x 2 x
/// clock (2 x 2 x 16 x 2 x 2.6 GHz = 333 GFLOP/s for two Sapphire Rapids cores), and on a shared
/// VM the delivered one wanders with the neighbours, so each benchmark measures it beside its
/// own timing. 0 when the build has no FMA vectors (no -march=native).
inline double fma_peak_gflops() {
#if defined(__AVX512F__)
  using Vec = __m512;
  constexpr int lanes = 16;
  const auto fma = [](Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); };
  const auto splat = [](float x) { return _mm512_set1_ps(x); };
#elif defined(__AVX2__) && defined(__FMA__)
  using Vec = __m256;
  constexpr int lanes = 8;
  const auto fma = [](Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); };
  const auto splat = [](float x) { return _mm256_set1_ps(x); };
#endif
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  constexpr long iterations = 20'000'000;
  constexpr int chains = 12;  // 4-cycle latency x 2 units = 8 in flight needed; 12 leave slack
  const int threads = num_threads();
  double best = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const auto start = std::chrono::steady_clock::now();
    parallel_tasks(static_cast<std::size_t>(threads), [&](std::size_t t) {
      volatile float seed = 1.0f + 0.001f * float(t);  // distinct, unknown values: no chain can be merged
      Vec a[chains];
      for (int i = 0; i < chains; ++i) a[i] = splat(seed + 0.01f * float(i));
      const Vec b = splat(seed * 0.999f), c = splat(seed * 1e-7f);
      for (long k = 0; k < iterations; ++k) {
#pragma GCC unroll 12
        for (int i = 0; i < chains; ++i) a[i] = fma(a[i], b, c);
        // Keeps all 12 chains live in registers, so the compiler cannot shorten the loop.
        __asm__ volatile("" : "+x"(a[0]), "+x"(a[1]), "+x"(a[2]), "+x"(a[3]), "+x"(a[4]), "+x"(a[5]), "+x"(a[6]), "+x"(a[7]),
                         "+x"(a[8]), "+x"(a[9]), "+x"(a[10]), "+x"(a[11]));
      }
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, double(threads) * iterations * chains * lanes * 2 / seconds / 1e9);
  }
  return best;
#else
  return 0;
#endif
}

/// The figures every timing benchmark ends with: ` peak_gflops=P fraction_of_peak=F` for a rate of
/// `gflops` (nothing when the build cannot measure the peak).
inline std::string peak_fraction(double gflops) {
  const double peak = fma_peak_gflops();
  if (peak <= 0) return {};
  char text[96];
  std::snprintf(text, sizeof text, " peak_gflops=%.0f fraction_of_peak=%.2f", peak, gflops / peak);
  return text;
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

/// SmolLM2-135M's shape (HuggingFaceTB/SmolLM2-135M): Llama, 30 layers, 9 query heads sharing 3
/// key/value heads of 64, width 576, SwiGLU MLP of 1536, a 49,152-token vocabulary tied to the unembedding.
inline ModelConfig smollm2_135m_config() {
  ModelConfig c;
  c.n_layer = 30, c.n_head = 9, c.n_kv_head = 3, c.head_dim = 64, c.n_embd = 576, c.n_inner = 1536;
  c.n_positions = 2048, c.vocab_size = 49152, c.layer_norm_epsilon = 1e-5;
  c.normalization = "RMS", c.act_fn = "silu", c.gated_mlp = true, c.positional = "rotary", c.rotary_base = 100000;
  c.attn_qkv_bias = c.attn_out_bias = c.mlp_bias = false, c.tie_word_embeddings = true;
  return c;
}

/// The command line every benchmark takes: --arch NAME, --dtype float32|float64|bfloat16, --batch B,
/// --pos P, and the options a program declares: switches (bench_exact's --full-gpt2-small)
/// and numbers (--memory-budget MB).
struct Options {
  std::string arch = "gpt2-small";  // empty: the program's own default model
  std::string dtype = "float32";
  std::size_t batch = 32, pos = 16;
  std::set<std::string> flags;                    // the declared switches the user gave
  std::map<std::string, std::size_t> numbers;     // the declared numeric options the user gave

  bool flag(const std::string& name) const { return flags.count(name) > 0; }
  std::size_t number(const std::string& name, std::size_t fallback) const {
    auto it = numbers.find(name);
    return it == numbers.end() ? fallback : it->second;
  }

  static Options parse(int argc, char** argv) { return parse(argc, argv, Options{}); }
  /// `defaults` carries the program's arch, batch and pos; `switches` and `numeric` the extra
  /// options it accepts.
  static Options parse(int argc, char** argv, Options defaults, const std::set<std::string>& switches = {},
                       const std::set<std::string>& numeric = {}) {
    Options o = std::move(defaults);
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      const bool has_value = i + 1 < argc;
      if (a == "--arch" && has_value) o.arch = argv[++i];
      else if (a == "--dtype" && has_value) o.dtype = argv[++i];
      else if (a == "--batch" && has_value) o.batch = std::strtoul(argv[++i], nullptr, 10);
      else if (a == "--pos" && has_value) o.pos = std::strtoul(argv[++i], nullptr, 10);
      else if (numeric.count(a) && has_value) o.numbers[a] = std::strtoul(argv[++i], nullptr, 10);
      else if (switches.count(a)) o.flags.insert(a);
      else {
        std::string extra;
        for (const auto& s : switches) extra += " [" + s + "]";
        for (const auto& s : numeric) extra += " [" + s + " N]";
        std::fprintf(stderr, "usage: %s [--arch gpt2-small|pythia-160m|llama-1b-shape|smollm2-135m] [--dtype float32|float64|bfloat16] [--batch B] [--pos P]%s\n",
                     argv[0], extra.c_str());
        std::exit(2);
      }
    }
    if (o.batch == 0 || o.pos == 0) {
      std::fprintf(stderr, "--batch and --pos must be positive\n");
      std::exit(2);
    }
    if (o.dtype != "float32" && o.dtype != "float64" && o.dtype != "bfloat16") {
      std::fprintf(stderr, "unknown --dtype %s (float32, float64, bfloat16)\n", o.dtype.c_str());
      std::exit(2);
    }
    if (o.dtype == "bfloat16" && !bfloat16_unavailable_reason().empty()) {
      std::fprintf(stderr, "--dtype bfloat16: %s\n", bfloat16_unavailable_reason().c_str());
      std::exit(2);
    }
    return o;
  }
};

template <class T>
const char* dtype_name() {
  if (std::is_same_v<T, double>) return "float64";
  return gemm_precision() == GemmPrecision::bfloat16 ? "float32 with bfloat16 GEMMs" : "float32";
}

/// Calls f(model) with a model of scalar T and random weights of the named shape.
template <class T, class F>
void with_model(const std::string& arch, F&& f) {
  if (arch == "gpt2-small") f(Model<GPT2, T>::random(gpt2_small_config(), 1));
  else if (arch == "pythia-160m") f(Model<Pythia, T>::random(pythia_160m_config(), 1));
  else if (arch == "llama-1b-shape") f(Model<Llama, T>::random(llama_1b_config(), 1));
  else if (arch == "smollm2-135m") f(Model<Llama, T>::random(smollm2_135m_config(), 1));
  else {
    std::fprintf(stderr, "unknown --arch %s (gpt2-small, pythia-160m, llama-1b-shape, smollm2-135m)\n", arch.c_str());
    std::exit(2);
  }
}

/// Calls f(tag) with tag a value of the scalar --dtype names (float{} or double{}; bfloat16 is
/// float{} with the GEMM precision set for the call), so a program writes its body once:
/// with_dtype(opt, [&](auto tag) { using T = decltype(tag); ... }).
template <class F>
void with_dtype(const Options& o, F&& f) {
  const GemmPrecisionScope precision(o.dtype == "bfloat16" ? GemmPrecision::bfloat16 : GemmPrecision::native);
  if (o.dtype == "float64") f(double{});
  else f(float{});
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

/// The benchmarks' task: B random clean and corrupted sequences of P tokens, example b's answer
/// token b and wrong token b + 1, ready for patching (the clean logits computed).
template <class M>
PatchingTask<typename M::scalar> random_task(const M& model, std::size_t B, std::size_t P) {
  Task task;
  const auto& c = model.config();
  const auto clean = random_sequences(B, P, c.vocab_size, 2), corrupted = random_sequences(B, P, c.vocab_size, 3);
  for (std::size_t b = 0; b < B; ++b) task.examples.push_back({clean[b], corrupted[b], {int(b)}, {int(b + 1)}});
  return make_patching_task(model, task);
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
