#pragma once
// Learned edge masks: Edge Pruning (Bhaskar, Wettig, Friedman & Chen 2024, "Finding Transformer
// Circuits with Edge Pruning", arXiv 2406.16778; MIB's mask-optimisation baselines). Every edge
// e gets a hard-concrete mask z_e with a learned log_alpha_e (patching/hard_concrete.hpp); the
// masked forward (patching/masked_forward.hpp) mixes each port's inputs from the clean run and
// the ablation's source by z, and AdamW (train/adamw.hpp) minimises (DESIGN.md section 2,
// "Learned edge masks")
//   loss = F(masked) + lambda E[L0]                                   (--l0 lambda)
//   loss = F(masked) + l1 (s - t_k) + l2 (s - t_k)^2                  (--edges N; Edge Pruning eq. 4)
// with F = KL(p_clean || p_masked) for kl (l2 likewise the metric itself), else
// (M(masked) - M(clean))^2; s = E[L0] / n_edges; t_k the target fraction, from 1 down to
// N / n_edges linearly over the first 30% of the steps; the multipliers l1, l2 (from 0) take
// AdamW steps up their gradient (the Lagrangian's max over l). The circuit: the N edges of
// largest log_alpha (--edges), or those with log_alpha > 0, the deterministic mask above 0.5
// (--l0). The noise u is drawn from std::mt19937_64(seed), edge by edge, step by step, so the
// same seed gives the same bytes for any thread count.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "circuitry/patching/edge_patching.hpp"
#include "circuitry/patching/hard_concrete.hpp"
#include "circuitry/patching/masked_forward.hpp"
#include "circuitry/train/adamw.hpp"

namespace circuitry {

struct LearnMaskProgress {
  std::size_t step = 0, steps = 0;  // steps done, of
  double loss = 0, expected_edges = 0, seconds = 0, seconds_left = 0;
};

struct LearnMaskOptions {
  std::size_t target_edges = 0;  // N > 0: drive E[L0] to N, keep the top N (Lagrangian)
  double l0 = 0;                 // lambda > 0 (when target_edges is 0): the L0 weight, keep log_alpha > 0
  std::size_t steps = 500;
  double lr = 0.1;               // AdamW's on log_alpha
  double multiplier_lr = 0.4;    // AdamW's on the Lagrangian's multipliers (--edges)
  double init_log_alpha = 3;     // every edge's start: P(z = 1) about 0.9
  std::uint64_t seed = 1;
  MetricKind metric = MetricKind::KL;
  Ablation ablation = Ablation::Resample;
  const Batch* mean_reference = nullptr;  // mean ablation's reference batch
  std::size_t progress_every = 0;         // 0: no progress
  std::function<void(const LearnMaskProgress&)> progress;
};

struct LearnedMask {
  std::vector<double> log_alpha;     // [n_edges] in Graph::edges() order: the circuit file's scores
  std::vector<std::uint8_t> in_graph;  // [n_edges] the final hard circuit
  std::size_t steps = 0;
  double loss = 0, faithfulness_loss = 0;  // at the last step
  double expected_edges = 0;               // E[L0] at the final log_alpha
  double seconds = 0;
};

/// One clear error for a bad option (steps, lr, the target or the L0 weight).
inline void check_learn_mask_options(const LearnMaskOptions& o, std::size_t n_edges) {
  require(o.steps > 0, "learn-mask: --steps must be positive");
  require(std::isfinite(o.lr) && o.lr > 0, "learn-mask: --lr must be a positive finite number");
  require(std::isfinite(o.multiplier_lr) && o.multiplier_lr > 0, "learn-mask: --multiplier-lr must be a positive finite number");
  require(std::isfinite(o.init_log_alpha), "learn-mask: the initial log_alpha must be finite");
  require((o.target_edges > 0) != (o.l0 != 0), "learn-mask: give either a target edge count (--edges N) or an L0 weight (--l0 LAMBDA)");
  if (o.target_edges > 0)
    require(o.target_edges <= n_edges, "learn-mask: --edges " + std::to_string(o.target_edges) + " is more than the graph's " +
                                           std::to_string(n_edges) + " edges");
  else
    require(std::isfinite(o.l0) && o.l0 > 0, "learn-mask: --l0 must be a positive finite number");
}

/// Learns a hard-concrete mask over every edge on `task`'s clean batch and returns the circuit.
template <class M, class T = typename M::scalar>
LearnedMask learn_mask(const M& model, const PatchingTask<T>& task, const LearnMaskOptions& o) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const Graph graph = model.graph();
  const std::size_t n = graph.n_edges(), bpd = task.clean.rows() * model.config().n_embd;
  check_learn_mask_options(o, n);
  const BuiltinMetric metric{o.metric};
  const bool distance = o.metric == MetricKind::KL || o.metric == MetricKind::L2;  // 0 at the clean run
  const double clean_metric = distance ? 0.0 : metric_value(metric, task.clean_logits, task.data);
  const MaskSources<T> sources = mask_sources(model, ablation_source(model, task, o.ablation, o.mean_reference), bpd);

  std::vector<T> log_alpha(n, static_cast<T>(o.init_log_alpha)), multipliers(2, T(0)), multiplier_grads(2);
  AdamW<T> optimiser(AdamWConfig{0.9, 0.999, 1e-8, 0, 0}), ascent(AdamWConfig{0.9, 0.999, 1e-8, 0, 0});
  std::mt19937_64 rng(o.seed);
  typename M::backend::Arena arena;
  LearnedMask r;
  for (std::size_t k = 0; k < o.steps; ++k) {
    arena.reset();
    Tape<T> tape(arena);
    const Context<T, true, typename M::backend> ctx(arena, tape);
    auto constant = [&](double v) {  // a scalar
      Var<T> c = ctx.output(Shape{}, false);
      c.value[0] = static_cast<T>(v);
      return c;
    };
    Var<T> la{log_alpha.data(), {n}, nullptr};
    tape.watch(la);
    const Var<T> z = hard_concrete_sample(ctx, la, HardConcrete::noise(rng, n));  // [n_edges]
    const Var<T> logits = masked_forward(ctx, model, task.clean, z, sources);   // [readout rows, vocab]
    Var<T> faith = metric(ctx, logits, task.data);                              // a scalar
    if (!distance) {
      const Var<T> gap = ops::add(ctx, faith, constant(-clean_metric));
      faith = ops::mul(ctx, gap, gap);
    }
    const Var<T> l0 = expected_l0(ctx, la);  // a scalar
    Var<T> loss;
    double gap = 0;  // s - t_k
    if (o.target_edges > 0) {
      const double warmup = std::max(1.0, 0.3 * double(o.steps)), target = double(o.target_edges) / double(n);
      const double t = 1 - (1 - target) * std::min(1.0, double(k) / warmup);
      gap = double(l0.value[0]) / double(n) - t;
      const Var<T> d = ops::add(ctx, ops::scale(ctx, l0, T(1) / T(n)), constant(-t));
      loss = ops::add(ctx, faith, ops::add(ctx, ops::scale(ctx, d, multipliers[0]), ops::scale(ctx, ops::mul(ctx, d, d), multipliers[1])));
    } else {
      loss = ops::add(ctx, faith, ops::scale(ctx, l0, static_cast<T>(o.l0)));
    }
    tape.backward(loss);
    r.loss = double(loss.value[0]), r.faithfulness_loss = double(faith.value[0]);
    require(std::isfinite(r.loss), "learn-mask: the loss is not finite at step " + std::to_string(k + 1));
    const Parameter<T> p{log_alpha.data(), tape.grad(la), n, false};
    optimiser.step(std::span<const Parameter<T>>(&p, 1), o.lr);
    if (o.target_edges > 0) {  // gradient ascent on the multipliers: AdamW on -d loss / d l
      multiplier_grads = {static_cast<T>(-gap), static_cast<T>(-gap * gap)};
      const Parameter<T> q{multipliers.data(), multiplier_grads.data(), 2, false};
      ascent.step(std::span<const Parameter<T>>(&q, 1), o.multiplier_lr);
    }
    if (o.progress && o.progress_every && ((k + 1) % o.progress_every == 0 || k + 1 == o.steps)) {
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      o.progress({k + 1, o.steps, r.loss, double(l0.value[0]), seconds, seconds / double(k + 1) * double(o.steps - k - 1)});
    }
  }
  r.steps = o.steps;
  r.log_alpha.assign(log_alpha.begin(), log_alpha.end());
  for (double a : r.log_alpha) r.expected_edges += HardConcrete::p_nonzero(a);
  r.in_graph.assign(n, 0);
  if (o.target_edges > 0) {  // the top N by log_alpha, ties by edge order
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return r.log_alpha[a] > r.log_alpha[b]; });
    for (std::size_t i = 0; i < o.target_edges; ++i) r.in_graph[order[i]] = 1;
  } else {
    for (std::size_t e = 0; e < n; ++e) r.in_graph[e] = r.log_alpha[e] > 0;
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return r;
}

}  // namespace circuitry
