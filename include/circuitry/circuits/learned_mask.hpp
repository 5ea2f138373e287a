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
//
// Restarts (--restarts R): the optimisation is not convex, so R runs with the seeds seed,
// seed + 1, ... each give a hard circuit, and the one whose own objective is least wins (ties: the
// earliest): F(hard circuit) for --edges (every circuit has N edges), F + lambda |C| for --l0,
// with F measured by patching every edge outside the circuit (evaluate_circuit). Restart i runs on
// rank i % size of a Distribution, and every rank returns the same bytes.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "circuitry/core/distribution.hpp"
#include "circuitry/patching/edge_patching.hpp"
#include "circuitry/patching/hard_concrete.hpp"
#include "circuitry/patching/masked_forward.hpp"
#include "circuitry/train/adamw.hpp"

namespace circuitry {

struct LearnMaskProgress {
  std::size_t step = 0, steps = 0;  // steps done, of
  std::size_t restart = 0, restarts = 1;  // the restart under way (from 0), of
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
  std::size_t restarts = 1;      // runs with seeds seed, seed + 1, ...; the best hard circuit wins
  MetricKind metric = MetricKind::KL;
  Ablation ablation = Ablation::Resample;
  const Batch* mean_reference = nullptr;  // mean ablation's reference batch
  std::size_t progress_every = 0;         // 0: no progress
  std::function<void(const LearnMaskProgress&)> progress;
  /// Splits the restarts over processes (core/distribution.hpp): restart i on rank i % size.
  const Distribution* distribution = nullptr;
};

/// One restart's outcome, as the restarts are compared.
struct LearnMaskRestart {
  std::uint64_t seed = 0;
  std::size_t n_edges = 0;         // of its hard circuit
  double circuit_faithfulness = 0;  // F(hard circuit)
  double objective = 0;             // F, plus lambda n_edges for --l0
};

struct LearnedMask {
  std::vector<double> log_alpha;     // [n_edges] in Graph::edges() order
  std::vector<std::uint8_t> in_graph;  // [n_edges] the final hard circuit
  std::size_t steps = 0;
  double loss = 0, faithfulness_loss = 0;  // at the last step
  double expected_edges = 0;               // E[L0] at the final log_alpha
  std::uint64_t seed = 0;                  // the winning restart's
  double circuit_faithfulness = 0;         // F of the hard circuit
  std::vector<LearnMaskRestart> restarts;  // every restart, in seed order
  double seconds = 0;
};

/// Each edge's score, the hard-concrete location alpha_e = exp(log_alpha_e): positive and in
/// log_alpha's order, so what ranks scores by magnitude (prune, evaluate --scores, ROC) ranks the
/// edges as the mask does. The circuit file's and compare's scores.
inline std::vector<double> learned_mask_scores(const LearnedMask& r) {
  std::vector<double> alpha(r.log_alpha.size());
  for (std::size_t e = 0; e < alpha.size(); ++e) alpha[e] = std::exp(r.log_alpha[e]);
  return alpha;
}

/// One clear error for a bad option (steps, lr, the target or the L0 weight).
inline void check_learn_mask_options(const LearnMaskOptions& o, std::size_t n_edges) {
  require(o.steps > 0, "learn-mask: --steps must be positive");
  require(o.restarts > 0, "learn-mask: --restarts must be positive");
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

namespace detail {

/// F of a run's metric value m: KL and l2 are distances already, else (m - M(clean))^2.
inline double mask_faithfulness(MetricKind kind, double m, double clean_metric) {
  return kind == MetricKind::KL || kind == MetricKind::L2 ? m : (m - clean_metric) * (m - clean_metric);
}

/// One restart: the mask learned from `seed`, its hard circuit and that circuit's F.
template <class M, class T>
LearnedMask learn_mask_from(const M& model, const PatchingTask<T>& task, const LearnMaskOptions& o, const std::vector<T>& source,
                            std::size_t restart) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const Graph graph = model.graph();
  const std::size_t n = graph.n_edges(), bpd = task.clean.rows() * model.config().n_embd;
  const BuiltinMetric metric{o.metric};
  const bool distance = o.metric == MetricKind::KL || o.metric == MetricKind::L2;  // 0 at the clean run
  const double clean_metric = distance ? 0.0 : metric_value(metric, task.clean_logits, task.data);
  const MaskSources<T> sources = mask_sources(model, std::vector<T>(source), bpd);

  std::vector<T> log_alpha(n, static_cast<T>(o.init_log_alpha)), multipliers(2, T(0)), multiplier_grads(2);
  AdamW<T> optimiser(AdamWConfig{0.9, 0.999, 1e-8, 0, 0}), ascent(AdamWConfig{0.9, 0.999, 1e-8, 0, 0});
  const std::uint64_t seed = o.seed + restart;
  std::mt19937_64 rng(seed);
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
      o.progress({k + 1, o.steps, restart, o.restarts, r.loss, double(l0.value[0]), seconds, seconds / double(k + 1) * double(o.steps - k - 1)});
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
  r.seed = seed;
  r.circuit_faithfulness = mask_faithfulness(o.metric, evaluate_circuit(model, task, metric, r.in_graph, source).metric, clean_metric);
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return r;
}

/// A restart's result as bytes for another process (core/distribution.hpp), and back.
inline std::string learned_mask_bytes(const LearnedMask& r) {
  std::string bytes;
  const std::size_t counts[] = {r.log_alpha.size(), r.steps};
  const double values[] = {r.loss, r.faithfulness_loss, r.expected_edges, r.circuit_faithfulness, r.seconds};
  append_bytes(bytes, counts, 2), append_bytes(bytes, values, 5), append_bytes(bytes, &r.seed, 1);
  append_bytes(bytes, r.log_alpha.data(), r.log_alpha.size()), append_bytes(bytes, r.in_graph.data(), r.in_graph.size());
  return bytes;
}
inline LearnedMask learned_mask_from_bytes(const std::string& bytes) {
  LearnedMask r;
  std::size_t at = 0, counts[2];
  double values[5];
  read_bytes(bytes, at, counts, 2), read_bytes(bytes, at, values, 5), read_bytes(bytes, at, &r.seed, 1);
  r.log_alpha.resize(counts[0]), r.in_graph.resize(counts[0]);
  read_bytes(bytes, at, r.log_alpha.data(), counts[0]), read_bytes(bytes, at, r.in_graph.data(), counts[0]);
  r.steps = counts[1];
  r.loss = values[0], r.faithfulness_loss = values[1], r.expected_edges = values[2], r.circuit_faithfulness = values[3], r.seconds = values[4];
  return r;
}

}  // namespace detail

/// Learns a hard-concrete mask over every edge on `task`'s clean batch and returns the circuit:
/// the best of o.restarts runs (see the top of this file).
template <class M, class T = typename M::scalar>
LearnedMask learn_mask(const M& model, const PatchingTask<T>& task, const LearnMaskOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  check_learn_mask_options(o, model.graph().n_edges());
  const std::vector<T> source = ablation_source(model, task, o.ablation, o.mean_reference);  // [n_upstream, B*P*D]
  const Distribution* split = o.distribution && o.distribution->size() > 1 ? o.distribution : nullptr;
  std::vector<std::string> results(o.restarts);
  for (std::size_t i = 0; i < o.restarts; ++i)
    if (!split || split->owns(i)) results[i] = detail::learned_mask_bytes(detail::learn_mask_from(model, task, o, source, i));
  if (split) split->share(results);
  LearnedMask best;
  double best_objective = 0;
  std::vector<LearnMaskRestart> restarts;
  for (std::size_t i = 0; i < o.restarts; ++i) {
    LearnedMask r = detail::learned_mask_from_bytes(results[i]);
    const std::size_t kept = static_cast<std::size_t>(std::count(r.in_graph.begin(), r.in_graph.end(), std::uint8_t{1}));
    const double objective = r.circuit_faithfulness + (o.target_edges > 0 ? 0.0 : o.l0 * double(kept));
    restarts.push_back({r.seed, kept, r.circuit_faithfulness, objective});
    if (i == 0 || objective < best_objective) best = std::move(r), best_objective = objective;  // ties: the earliest
  }
  best.restarts = std::move(restarts);
  best.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return best;
}

}  // namespace circuitry
