// Training: the induction task generator, AdamW (one step by hand, a quadratic, which
// parameters decay), clipping, the learning-rate schedule, and a short training run.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <set>
#include <span>
#include <vector>

#include <circuitry/core/parallel.hpp>
#include <circuitry/text/induction.hpp>
#include <circuitry/train/trainer.hpp>

using namespace circuitry;

namespace {

bool distinct(const std::vector<int>& v) { return std::set<int>(v.begin(), v.end()).size() == v.size(); }

bool in_range(const std::vector<int>& v, std::size_t vocab) {
  return std::all_of(v.begin(), v.end(), [&](int t) { return t >= 0 && static_cast<std::size_t>(t) < vocab; });
}

ModelConfig tiny_attn_only() {
  ModelConfig c;
  c.n_layer = 2, c.n_head = 2, c.n_embd = 16, c.n_positions = 12, c.vocab_size = 16, c.n_inner = 64;
  c.attn_only = true, c.tie_word_embeddings = false;
  return c;
}

}  // namespace

TEST_CASE("induction training sequences repeat a first half of distinct tokens") {
  std::mt19937 rng(7);
  const auto seqs = induction_training_batch(20, 8, 50, rng);
  REQUIRE(seqs.size() == 50);
  for (const auto& s : seqs) {
    REQUIRE(s.size() == 16);
    CHECK(in_range(s, 20));
    const std::vector<int> first(s.begin(), s.begin() + 8), second(s.begin() + 8, s.end());
    CHECK(distinct(first));
    CHECK(first == second);
  }
  std::mt19937 again(7);
  CHECK(induction_training_batch(20, 8, 50, again) == seqs);
  CHECK(induction_training_batch(8, 8, 1, rng)[0].size() == 16);  // the whole vocabulary fits in a half
  CHECK_THROWS_AS(induction_training_batch(7, 8, 1, rng), Error);

  // With a prefix: p_1 .. p_r x_0 .. x_{n-1} x_0 .. x_{n-1}, the first r + n tokens distinct.
  const std::vector<int> s = induction_sequence(20, 5, 7, rng);
  REQUIRE(s.size() == 5 + 2 * 7);
  CHECK(in_range(s, 20));
  CHECK(distinct({s.begin(), s.begin() + 12}));
  CHECK(std::equal(s.begin() + 12, s.end(), s.begin() + 5));
  CHECK_THROWS_AS(induction_sequence(11, 5, 7, rng), Error);
}

TEST_CASE("induction task: answer follows the last token's earlier occurrence, corrupted moves it") {
  const std::size_t vocab = 30, n = 10, min_prefix = 3;
  const Task task = make_induction_task(vocab, n, 200, 11, min_prefix);
  REQUIRE(task.examples.size() == 200);
  std::set<std::size_t> lengths;
  for (const TaskExample& e : task.examples) {
    const std::size_t len = e.clean.size();
    REQUIRE(e.corrupted.size() == len);
    REQUIRE(len >= n + min_prefix);
    REQUIRE(len <= 2 * n - 1);
    lengths.insert(len);
    CHECK(in_range(e.clean, vocab));
    CHECK(in_range(e.corrupted, vocab));
    CHECK(e.answer != e.wrong);
    REQUIRE(e.answer.size() == 1);
    REQUIRE(e.wrong.size() == 1);
    CHECK(in_range({e.answer[0], e.wrong[0]}, vocab));

    // The first half has no repeats and the rest repeats its beginning.
    const std::vector<int> first(e.clean.begin(), e.clean.begin() + n);
    CHECK(distinct(first));
    const std::size_t k = len - n;
    CHECK(std::equal(e.clean.begin() + n, e.clean.end(), first.begin()));
    // Last token A = x_{k-1}; its first occurrence is followed by the answer B = x_k.
    const int a = e.clean.back();
    const auto at = std::find(e.clean.begin(), e.clean.end(), a);
    CHECK(static_cast<std::size_t>(at - e.clean.begin()) == k - 1);
    CHECK(*(at + 1) == e.answer[0]);
    // C appears nowhere in the clean sequence; corrupted differs in one position, which held B.
    CHECK(std::find(e.clean.begin(), e.clean.end(), e.wrong[0]) == e.clean.end());
    std::vector<std::size_t> diffs;
    for (std::size_t i = 0; i < len; ++i)
      if (e.clean[i] != e.corrupted[i]) diffs.push_back(i);
    REQUIRE(diffs.size() == 1);
    CHECK(diffs[0] == k);
    CHECK(e.clean[k] == e.answer[0]);
    CHECK(e.corrupted[k] == e.wrong[0]);
  }
  CHECK(lengths.size() == n - min_prefix);  // every cut in [min_prefix, n - 1] occurs

  const Task same = make_induction_task(vocab, n, 200, 11, min_prefix);
  const Task other = make_induction_task(vocab, n, 200, 12, min_prefix);
  bool all_same = true, all_other = true;
  for (std::size_t i = 0; i < 200; ++i) {
    all_same = all_same && same.examples[i].clean == task.examples[i].clean &&
               same.examples[i].corrupted == task.examples[i].corrupted && same.examples[i].answer == task.examples[i].answer &&
               same.examples[i].wrong == task.examples[i].wrong;
    all_other = all_other && other.examples[i].clean == task.examples[i].clean;
  }
  CHECK(all_same);
  CHECK_FALSE(all_other);

  CHECK_THROWS_AS(make_induction_task(10, 10, 1, 0), Error);     // no token left for C
  CHECK_THROWS_AS(make_induction_task(30, 10, 1, 0, 10), Error); // cut past the first half
  CHECK_THROWS_AS(make_induction_task(30, 10, 1, 0, 0), Error);
}

TEST_CASE("learning-rate schedule: linear warmup, cosine to the floor") {
  const LrSchedule s{1e-3, 1e-4, 10, 110};
  CHECK(s(0) == doctest::Approx(1e-4));
  CHECK(s(4) == doctest::Approx(5e-4));
  CHECK(s(9) == doctest::Approx(1e-3));
  CHECK(s(10) == doctest::Approx(1e-3));
  CHECK(s(60) == doctest::Approx(5.5e-4));  // half way down the cosine
  CHECK(s(109) > 1e-4);
  CHECK(s(110) == doctest::Approx(1e-4));
  CHECK(s(500) == doctest::Approx(1e-4));
  for (std::size_t i = 10; i < 110; ++i) CHECK(s(i + 1) <= s(i));
}

TEST_CASE("global-norm clipping") {
  std::vector<double> g1{3, 0}, g2{0, 4}, x(2);
  const std::vector<Parameter<double>> ps{{x.data(), g1.data(), 2, false}, {x.data(), g2.data(), 2, false}};
  CHECK(clip_grad_norm<double>(ps, 10.0) == doctest::Approx(5));
  CHECK(g1[0] == 3);  // below the threshold: unchanged
  CHECK(clip_grad_norm<double>(ps, 1.0) == doctest::Approx(5));
  CHECK(g1[0] == doctest::Approx(0.6).epsilon(1e-6));
  CHECK(g2[1] == doctest::Approx(0.8).epsilon(1e-6));
  CHECK(clip_grad_norm<double>(ps, 0.0) == doctest::Approx(1).epsilon(1e-6));  // 0: no clipping
}

TEST_CASE("AdamW: first step by hand, and it minimises a quadratic") {
  AdamWConfig cfg;
  cfg.weight_decay = 0.5, cfg.max_grad_norm = 0;
  {
    // Step 1: m_hat = g, v_hat = g^2, so theta <- theta (1 - lr lambda) - lr g / (|g| + eps).
    AdamW<double> opt(cfg);
    std::vector<double> w{1.0, -2.0}, b{0.5}, gw{0.3, -4.0}, gb{2.0};
    const std::vector<Parameter<double>> ps{{w.data(), gw.data(), 2, true}, {b.data(), gb.data(), 1, false}};
    const double lr = 0.1;
    opt.step(ps, lr);
    CHECK(w[0] == doctest::Approx(1.0 * (1 - lr * 0.5) - lr * 0.3 / (0.3 + 1e-8)));
    CHECK(w[1] == doctest::Approx(-2.0 * (1 - lr * 0.5) + lr * 4.0 / (4.0 + 1e-8)));
    CHECK(b[0] == doctest::Approx(0.5 - lr));  // no decay on this one
    CHECK(opt.steps() == 1);
  }
  // f(x) = sum_i a_i (x_i - c_i)^2, gradient 2 a_i (x_i - c_i); no decay, so the minimum is c.
  cfg.weight_decay = 0, cfg.max_grad_norm = 1.0;
  AdamW<double> opt(cfg);
  const std::vector<double> a{1, 10, 0.1}, c{3, -1, 2};
  std::vector<double> x{0, 0, 0}, g(3);
  auto f = [&] {
    double s = 0;
    for (std::size_t i = 0; i < 3; ++i) s += a[i] * (x[i] - c[i]) * (x[i] - c[i]);
    return s;
  };
  const double before = f();
  const LrSchedule lr{0.1, 0.001, 10, 500};
  const std::vector<Parameter<double>> ps{{x.data(), g.data(), 3, false}};
  for (std::size_t s = 0; s < 500; ++s) {
    for (std::size_t i = 0; i < 3; ++i) g[i] = 2 * a[i] * (x[i] - c[i]);
    opt.step(ps, lr(s));
  }
  CHECK(f() < 1e-3 * before);
  for (std::size_t i = 0; i < 3; ++i) CHECK(x[i] == doctest::Approx(c[i]).epsilon(0.02));
}

TEST_CASE("AdamW rounds every element the same wherever its buffers lie (offsets 0..7 from a 64-byte boundary)") {
  for (bool decay : {false, true}) {
    const std::size_t n = 37;
    std::mt19937_64 rng(3);
    std::normal_distribution<double> normal;
    std::vector<double> start(n), grads(3 * n);
    for (double& x : start) x = normal(rng);
    for (double& x : grads) x = normal(rng);
    std::vector<std::vector<double>> results;
    for (std::size_t offset = 0; offset < 8; ++offset) {
      alignas(64) static double theta[64 + 8], grad[64 + 8];  // static: the same 64-byte boundary each time
      std::copy(start.begin(), start.end(), theta + offset);
      AdamWConfig cfg;
      cfg.weight_decay = 0.1, cfg.max_grad_norm = 0;
      AdamW<double> opt(cfg);
      for (std::size_t step = 0; step < 3; ++step) {
        std::copy(grads.begin() + step * n, grads.begin() + (step + 1) * n, grad + offset);
        const Parameter<double> p{theta + offset, grad + offset, n, decay};
        opt.step(std::span<const Parameter<double>>(&p, 1), 0.3);
      }
      results.emplace_back(theta + offset, theta + offset + n);
    }
    for (std::size_t offset = 1; offset < 8; ++offset) {
      CAPTURE(offset);
      CHECK(std::memcmp(results[offset].data(), results[0].data(), n * sizeof(double)) == 0);
    }
  }
}

TEST_CASE("AdamW on a model decays weight matrices only") {
  // With zero gradients Adam's update is 0, so only the decoupled decay moves the weights.
  auto model = Model<AttnOnly, double>::random(tiny_attn_only(), 1);
  const Weights<double> before = model.weights();
  Arena arena;
  Tape<double> tape(arena);
  ParamVars<double> params = model.params();
  params.watch_all(tape);
  AdamWConfig cfg;
  cfg.weight_decay = 0.5;
  AdamW<double> opt(cfg);
  opt.step(params, tape, 0.1);
  const auto& w = model.weights();
  auto scaled = [](const auto& now, const auto& was, double f) {
    for (std::size_t i = 0; i < now.size(); ++i)
      if (std::abs(now.data()[i] - f * was.data()[i]) > 1e-12) return false;
    return true;
  };
  auto same_name = [&](const std::string& name, double f) { return scaled(w.at(name), before.at(name), f); };
  CHECK(same_name("embed.W_E", 1.0));
  CHECK(same_name("pos_embed.W_pos", 1.0));
  CHECK(same_name("unembed.W_U", 0.95));
  CHECK(same_name("ln_final.w", 1.0));
  for (std::size_t l = 0; l < model.config().n_layer; ++l) {
    CHECK(same_name(layer_param(l, "attn.W_QKV"), 0.95));
    CHECK(same_name(layer_param(l, "attn.W_O"), 0.95));
    CHECK(same_name(layer_param(l, "ln1.w"), 1.0));
  }
  // A tied model: wte is also the unembedding, and stays undecayed.
  ModelConfig tied = tiny_attn_only();
  tied.tie_word_embeddings = true;
  auto tied_model = Model<AttnOnly, double>::random(tied, 2);
  const auto wte = tied_model.weights().at("embed.W_E");
  ParamVars<double> tied_params = tied_model.params();
  tied_params.watch_all(tape);
  AdamW<double>(cfg).step(tied_params, tape, 0.1);
  CHECK(scaled(tied_model.weights().at("embed.W_E"), wte, 1.0));
}

TEST_CASE("training a tiny attention-only model on induction sequences lowers the loss, reproducibly") {
  // One thread: tiny kernels gain nothing from a team, and a busy machine makes it spin.
  struct OneThread {
    int before = num_threads();
    OneThread() { set_num_threads(1); }
    ~OneThread() { set_num_threads(before); }
  } one_thread;
  ModelConfig c = tiny_attn_only();
  c.vocab_size = 8;
  const BatchSource source = [&](std::mt19937& rng) { return induction_training_batch(c.vocab_size, 6, 32, rng); };
  TrainConfig cfg;
  cfg.lr = 3e-2, cfg.min_lr = 3e-3, cfg.warmup_steps = 5, cfg.seed = 1;
  auto run = [&](std::size_t steps, std::vector<TrainProgress>& reports) {
    cfg.steps = steps, cfg.log_every = steps / 3;
    auto model = Model<AttnOnly, float>::random(c, 1);
    const TrainResult r = train_language_model(model, source, cfg, [&](const TrainProgress& p) { reports.push_back(p); });
    return std::pair{model.weights(), r};
  };

  std::vector<TrainProgress> reports;
  const auto [weights, result] = run(90, reports);
  REQUIRE(result.losses.size() == 90);
  CHECK(result.tokens == 90 * 32 * 12);
  const auto mean = [](auto first, auto last) { return std::accumulate(first, last, 0.0) / static_cast<double>(last - first); };
  const double start = mean(result.losses.begin(), result.losses.begin() + 5);
  const double end = mean(result.losses.end() - 5, result.losses.end());
  INFO("loss over the first 5 steps " << start << ", over the last 5 " << end);
  CHECK(start == doctest::Approx(std::log(8.0)).epsilon(0.02));  // uniform at initialisation
  CHECK(end < start - 0.4);

  REQUIRE(reports.size() == 3);
  CHECK(reports[0].step == 30);
  CHECK(reports[2].step == 90);
  CHECK(reports[2].steps == 90);
  CHECK(reports[2].loss == result.losses.back());
  CHECK(reports[2].lr == doctest::Approx(LrSchedule{3e-2, 3e-3, 5, 90}(89)));
  CHECK(reports[2].grad_norm > 0);

  // Same seeds, same thread count: bit-identical losses and weights.
  std::vector<TrainProgress> r1, r2;
  const auto [w1, a] = run(12, r1);
  const auto [w2, b] = run(12, r2);
  CHECK(a.losses == b.losses);
  CHECK(w1.at("embed.W_E") == w2.at("embed.W_E"));
  CHECK(w1.at("blocks.1.attn.W_QKV") == w2.at("blocks.1.attn.W_QKV"));
  CHECK(w1.at("unembed.W_U") == w2.at("unembed.W_U"));
  CHECK_FALSE(w1.at("unembed.W_U") == Model<AttnOnly, float>::random(c, 1).weights().at("unembed.W_U"));  // training did move it
}

TEST_CASE("induction task: the trigger corruption replaces the earlier copy of the last token") {
  const Task task = make_induction_task(40, 10, 30, 5, 2, InductionCorruption::Trigger);
  for (const auto& e : task.examples) {
    REQUIRE(e.clean.size() == e.corrupted.size());
    std::size_t changed = 0, where = 0;
    for (std::size_t i = 0; i < e.clean.size(); ++i)
      if (e.clean[i] != e.corrupted[i]) ++changed, where = i;
    CHECK(changed == 1);
    CHECK(e.clean[where] == e.clean.back());  // the earlier A
    CHECK(e.clean[where + 1] == e.answer[0]);  // followed by B
    CHECK(e.corrupted[where] == e.wrong[0]);
  }
}
