// Trains the shipped induction model: a 2-layer attention-only transformer on repeated
// random token sequences (text/induction.hpp) until induction heads form: a layer-0 head that
// attends to the previous token and layer-1 heads that attend from a repeated token to the
// token after its earlier occurrence (Olsson et al. 2022). The loss on the repeated half then
// falls far below ln(vocab) while the first half, which is unpredictable, stays near it.
// Writes a Hugging Face GPT-2 directory (config.json + model.safetensors).
//
//   train_induction [--out DIR] [--seed N] [--steps N] [--threads N]
// (defaults: models/induction-2l, seed 1, 5000 steps, 1 thread; --threads 0 uses every core)
//
// Training sequences are p_1 .. p_r x_0 .. x_{n-1} x_0 .. x_{n-1} (induction_sequence), with
// the half length n uniform in [2, 16] and the prefix length r uniform in [0, 32 - 2n], drawn
// per sequence. Without the varying prefix and lengths the model finds positional shortcuts
// (say, "copy from position q - n + 1" for a known n) instead of matching tokens. Which
// mechanism forms also depends on the seed: some seeds grow a duplicate-token head in layer 0
// instead of a previous-token head, so the program prints each head's attention scores.
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include <circuitry/core/parallel.hpp>
#include <circuitry/io/checkpoint.hpp>
#include <circuitry/text/induction.hpp>
#include <circuitry/train/trainer.hpp>

using namespace circuitry;

namespace {

constexpr std::size_t kVocab = 64, kContext = 32, kMinHalf = 2, kMaxHalf = kContext / 2, kBatch = 32;

struct Options {
  std::string out = "models/induction-2l";
  unsigned seed = 1;
  std::size_t steps = 5000;
  int threads = 1;  // the bits of a run depend on the thread count; one is the same everywhere
};

Options parse(int argc, char** argv) {
  Options o;
  auto number = [&](int& i, const std::string& flag, unsigned long max) {
    if (i + 1 >= argc) throw Error(flag + " needs a value");
    const std::string text = argv[++i];
    char* end = nullptr;
    errno = 0;
    const unsigned long v = std::strtoul(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || text[0] == '-' || errno == ERANGE || v > max)
      throw Error(flag + " must be an integer in [0, " + std::to_string(max) + "], got '" + text + "'");
    return v;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--out") {
      if (i + 1 >= argc) throw Error("--out needs a directory");
      o.out = argv[++i];
    } else if (flag == "--seed") {
      o.seed = static_cast<unsigned>(number(i, flag, UINT_MAX));
    } else if (flag == "--steps") {
      o.steps = number(i, flag, 100'000'000);
    } else if (flag == "--threads") {
      o.threads = static_cast<int>(number(i, flag, 1024));
    } else {
      throw Error("unknown argument '" + flag + "' (usage: train_induction [--out DIR] [--seed N] [--steps N] [--threads N])");
    }
  }
  if (o.steps == 0) throw Error("--steps must be positive");
  return o;
}

/// Held-out sequences p_1 .. p_r x_0 .. x_{n-1} x_0 .. x_{n-1}: the mean loss of the
/// predictions of x_1 .. x_{n-1} in the first half and again in the repeat (where induction
/// applies), and per head the mean attention to the previous token and, from each repeated
/// x_{i-1}, to x_i in the first half (the induction target).
struct HeldOut {
  double first = 0, repeat = 0;
  std::vector<double> previous_token, induction;  // [layer * n_head + head]
};

HeldOut held_out(const Model<AttnOnly, float>& model, std::size_t prefix, std::size_t half, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<int>> seqs(256);
  for (auto& s : seqs) s = induction_sequence(kVocab, prefix, half, rng);
  const Batch batch = Batch::from(seqs);
  const std::size_t B = batch.batch, P = batch.pos, H = model.config().n_head, L = model.config().n_layer;
  HeldOut r;
  r.previous_token.assign(L * H, 0.0);
  r.induction.assign(L * H, 0.0);
  Hooks<float> hooks;
  for (std::size_t l = 0; l < L; ++l)
    hooks.add("blocks." + std::to_string(l) + ".attn.hook_pattern", [&, l](TensorView<float> pattern) {  // [B, H, P, P]
      for (std::size_t h = 0; h < H; ++h)
        for (std::size_t b = 0; b < B; ++b) {
          for (std::size_t q = 1; q < P; ++q) r.previous_token[l * H + h] += pattern(b, h, q, q - 1) / double(B * (P - 1));
          for (std::size_t q = prefix + half; q < P; ++q)
            r.induction[l * H + h] += pattern(b, h, q, q - half + 1) / double(B * half);
        }
    });
  Arena arena;
  const Context<float, false> ctx(arena);
  ForwardOptions<float> o;
  o.all_positions = true;
  o.hooks = &hooks;
  const Var<float> logp = ops::log_softmax(ctx, model.forward(ctx, batch, o));  // [batch * pos, vocab]
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t i = 1; i < half; ++i) {
      const std::size_t target = static_cast<std::size_t>(seqs[b][prefix + i]);
      r.first -= logp.value[(b * P + prefix + i - 1) * kVocab + target];
      r.repeat -= logp.value[(b * P + prefix + half + i - 1) * kVocab + target];
    }
  r.first /= double(B * (half - 1));
  r.repeat /= double(B * (half - 1));
  return r;
}

/// On the induction task: how often the answer is the top logit, and the mean logit difference
/// (answer - wrong) on the clean and the corrupted sequences.
void report_task(const Model<AttnOnly, float>& model, unsigned seed) {
  const Task task = make_induction_task(kVocab, kMaxHalf, 200, seed);
  std::vector<std::vector<int>> clean, corrupted;
  for (const auto& e : task.examples) clean.push_back(e.clean), corrupted.push_back(e.corrupted);
  Arena arena;
  const Context<float, false> ctx(arena);
  const Var<float> lc = model.forward(ctx, Batch::from(clean));      // [examples, vocab]
  const Var<float> lx = model.forward(ctx, Batch::from(corrupted));  // [examples, vocab]
  double correct = 0, diff_clean = 0, diff_corrupted = 0;
  for (std::size_t i = 0; i < task.examples.size(); ++i) {
    const float* c = lc.value + i * kVocab;
    const float* x = lx.value + i * kVocab;
    const auto& e = task.examples[i];
    const int answer = e.answer[0], wrong = e.wrong[0];  // the induction task has one token each
    correct += std::max_element(c, c + kVocab) - c == answer;
    diff_clean += c[answer] - c[wrong];
    diff_corrupted += x[answer] - x[wrong];
  }
  const double n = static_cast<double>(task.examples.size());
  std::printf("induction task (%zu examples, half %zu): top-1 %.1f%%, logit diff clean %.2f, corrupted %.2f\n",
              task.examples.size(), kMaxHalf, 100 * correct / n, diff_clean / n, diff_corrupted / n);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options opt = parse(argc, argv);
    set_num_threads(opt.threads);

    ModelConfig config;
    config.n_layer = 2, config.n_head = 4, config.n_embd = 64, config.n_positions = kContext;
    config.vocab_size = kVocab, config.n_inner = 4 * config.n_embd;  // n_inner is unused without MLPs
    config.attn_only = true, config.tie_word_embeddings = false;
    auto model = Model<AttnOnly, float>::random(config, opt.seed);

    TrainConfig train;
    train.steps = opt.steps;
    train.lr = 1e-3;  // at 3e-3 the loss stays on the ln(vocab) plateau
    train.min_lr = 1e-4;
    train.warmup_steps = 100;
    train.seed = opt.seed + 1;  // the data stream, apart from the initialisation's
    train.log_every = 250;
    const BatchSource source = [](std::mt19937& rng) {
      std::vector<std::vector<int>> seqs(kBatch);
      for (auto& s : seqs) {
        const std::size_t half = kMinHalf + rng() % (kMaxHalf - kMinHalf + 1);
        s = induction_sequence(kVocab, rng() % (kContext - 2 * half + 1), half, rng);
      }
      return seqs;
    };
    std::printf("training a 2-layer attention-only model (d_model %zu, %zu heads, vocab %zu) for %zu steps\n",
                config.n_embd, config.n_head, kVocab, opt.steps);
    const TrainResult r = train_language_model(model, source, train);
    std::printf("trained in %.1f s (%zu tokens, %.0f tok/s)\n", r.seconds, r.tokens, double(r.tokens) / r.seconds);

    // The whole context as one repeat, and a short repeat shifted by a prefix.
    const HeldOut full = held_out(model, 0, kMaxHalf, opt.seed + 1000);
    const HeldOut shifted = held_out(model, kContext - 2 * 8, 8, opt.seed + 1000);
    std::printf("held-out loss (ln vocab = %.3f):\n", std::log(double(kVocab)));
    std::printf("  half length 16:            first half %.3f, repeated half %.3f\n", full.first, full.repeat);
    std::printf("  prefix 16, half length 8:  first half %.3f, repeated half %.3f\n", shifted.first, shifted.repeat);
    std::printf("attention of each head to the previous token | to the induction target (prefix 16, half 8):\n");
    for (std::size_t l = 0; l < config.n_layer; ++l) {
      std::printf("  layer %zu:", l);
      for (std::size_t h = 0; h < config.n_head; ++h)
        std::printf("  h%zu %.2f | %.2f", h, shifted.previous_token[l * config.n_head + h], shifted.induction[l * config.n_head + h]);
      std::printf("\n");
    }
    report_task(model, opt.seed + 1001);

    io::save_checkpoint(opt.out, model.config(), model.weights());
    std::printf("wrote %s (config.json, model.safetensors)\n", opt.out.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_induction: %s\n", e.what());
    return 1;
  }
}
