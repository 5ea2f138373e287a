#pragma once
// Attribution patching: first-order estimates of every edge's patching effect from a few
// gradient runs (Syed et al. 2023, "Attribution Patching Outperforms Automated Circuit
// Discovery"; Hanna et al. 2024, EAP-IG). With Delta_u = out_u(x') - out_u(x),
//   score(u->p) = sum_{b, pos} Delta_u . g_p,  g_p = d M / d in_p,
// where g_p is averaged over the policy's gradient runs:
//   eap             one run on the clean input;
//   eap-ig (m)      m runs with the input node set to e(x') + (k/m)(e(x) - e(x')), k = 0..m-1;
//   clean-corrupted the clean run and the corrupted run, averaged.
// The port gradients come from the tape (ops/norm_linear.hpp) one stage at a time, and each
// stage's scores are one GEMM: S[u, p] = Delta[u] . G[p] over batch * pos * d_model.
// The tape and Delta grow with the batch; a task larger than the policy's memory budget runs in
// parts of equal numbers of examples whose scores are summed, weighted by their share of the
// examples (exact for metrics that are means over examples, as EAP-IG sums over its batches).
// The parts may run on several processes (the policy's Distribution), summed in part order.
// A policy may also change the backward pass (gradient_rules(): GIM, patching/gim.hpp).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "circuitry/core/distribution.hpp"
#include "circuitry/patching/edge_patching.hpp"

namespace circuitry {

/// One gradient run of a policy: which input, and the weight of its gradient in the average.
struct GradientRun {
  bool corrupted_input = false;
  double interpolation = 1.0;  // input node = e(x') + interpolation * (e(x) - e(x')); 1 = clean
  double weight = 1.0;
};

/// Working memory of attribution patching, in bytes (attribution_memory_per_example says what is
/// counted): 512 MiB keeps GPT-2 small's EAP on 32 x 16 tokens, weights included, under 1 GB.
inline constexpr std::size_t kAttributionMemoryBudget = std::size_t{512} << 20;

struct Eap {
  static constexpr const char* name = "eap";
  std::size_t memory_budget = kAttributionMemoryBudget;
  const Distribution* distribution = nullptr;  // the parts over processes (attribute_gradients)
  std::vector<GradientRun> gradient_runs() const { return {{false, 1.0, 1.0}}; }
};

struct EapIg {
  static constexpr const char* name = "eap-ig";
  std::size_t steps = 5;
  std::size_t memory_budget = kAttributionMemoryBudget;
  const Distribution* distribution = nullptr;
  std::vector<GradientRun> gradient_runs() const {
    require(steps > 0, "eap-ig needs at least one step");
    std::vector<GradientRun> runs;
    for (std::size_t k = 0; k < steps; ++k) runs.push_back({false, double(k) / double(steps), 1.0 / double(steps)});
    return runs;
  }
};

struct CleanCorrupted {
  static constexpr const char* name = "clean-corrupted";
  std::size_t memory_budget = kAttributionMemoryBudget;
  const Distribution* distribution = nullptr;
  std::vector<GradientRun> gradient_runs() const { return {{false, 1.0, 0.5}, {true, 1.0, 0.5}}; }
};

/// A gradient-based attribution method.
template <class P>
concept GradientPolicy = requires(const P& p) {
  { P::name } -> std::convertible_to<std::string>;
  { p.gradient_runs() } -> std::same_as<std::vector<GradientRun>>;
};

struct Attribution {
  std::string method;
  double clean_metric = 0, corrupted_metric = 0;
  std::vector<double> edge_scores;  // per edge, in Graph::edges() order
  std::vector<double> node_scores;  // per upstream node: the sum over its outgoing edges

  void compute_node_scores(const Graph& g) {
    node_scores.assign(g.upstream().size(), 0.0);
    for (std::size_t e = 0; e < g.n_edges(); ++e) node_scores[static_cast<std::size_t>(g.edges()[e].upstream)] += edge_scores[e];
  }
};

/// An overflowing model (infinite or NaN logits) makes every score meaningless, and JSON would
/// store the metric as null: refused as soon as the reference runs are done, for every method.
inline void require_finite_metrics(const Attribution& r) {
  for (const auto& [run, value] : {std::pair{"clean", r.clean_metric}, std::pair{"corrupted", r.corrupted_metric}})
    require(std::isfinite(value), std::string("the ") + run + " run's metric is not finite (" + std::to_string(value) +
                                      "): the model's numbers overflow or are NaN; check the checkpoint's weights");
}

/// Values one layer's activations hold per token of sequences of `pos` tokens (norms, q|k|v,
/// z, attention rows, MLP hidden): the unit of both attributions' memory estimates.
template <class M>
std::size_t layer_activations_per_token(const M& model, std::size_t pos) {
  const ModelConfig& c = model.config();
  const std::size_t mlp = M::architecture::has_mlp ? (c.gated_mlp ? 3 : 2) * c.n_inner : 0;
  return 7 * c.n_embd + 2 * c.qkv_width() + c.d_attn() + c.n_head * pos + mlp;
}

/// Bytes of attribution patching's working memory per example, from the shapes: per token, each
/// layer's activations on the tape and their adjoints (norm outputs, q|k|v, z, attention rows, MLP
/// hidden), Delta of every upstream node and one stage's port gradients; per readout row the
/// logits, their log-softmax and adjoint. An estimate (GPT-2 small: 2.2 MB per token, measured
/// 1.9), used only to cut a task into parts.
template <class M>
std::size_t attribution_memory_per_example(const M& model, const Batch& clean) {
  using T = typename M::scalar;
  const ModelConfig& c = model.config();
  const std::size_t D = c.n_embd;
  const std::size_t per_token =
      2 * c.n_layer * layer_activations_per_token(model, clean.pos) + model.n_upstream() * D + 3 * c.n_head * D;
  const std::size_t readout_rows = (clean.readout.size() + clean.batch - 1) / clean.batch;
  return (clean.pos * per_token + 3 * readout_rows * c.n_outputs()) * sizeof(T);
}

/// How many parts attribute_gradients cuts the task of batch `clean` into: as few as keep each
/// part's working memory within the budget, at least one. Depends on the shapes and the budget only.
template <class M>
std::size_t attribution_parts(const M& model, const Batch& clean, std::size_t memory_budget) {
  const std::size_t fit = std::max<std::size_t>(1, memory_budget / attribution_memory_per_example(model, clean));
  return (clean.batch + fit - 1) / fit;
}

namespace detail {

/// The buffers of one attribution pass, kept by attribute_gradients for all its parts: GPT-2
/// small's Delta on 11 x 16 tokens is 85 MB, which a fresh vector would fault in again (4 KiB
/// at a time) in every part.
template <class T>
struct AttributionBuffers {
  std::vector<T> delta;  // Delta = out(x') - out(x)  [n_upstream, B*P*D]
};

/// The start every gradient method shares: the result with the clean metric and zero scores, and
/// the corrupted run, which writes out(x') into Delta's buffer [n_upstream, B*P*D] (a clean run
/// then subtracts out(x)) and gives the corrupted metric.
template <class M, class Metric, class T = typename M::scalar>
Attribution start_attribution(const M& model, const Graph& graph, const PatchingTask<T>& task, const Metric& metric,
                              const std::string& method, AttributionBuffers<T>& buffers) {
  Attribution result;
  result.method = method;
  result.edge_scores.assign(graph.n_edges(), 0.0);
  result.clean_metric = metric_value(metric, task.clean_logits, task.data);
  std::vector<T>& delta = buffers.delta;  // every element written by the corrupted run before it is read
  delta.resize(model.n_upstream() * task.clean.rows() * model.config().n_embd);
  ArenaFor<M> arena;
  ContextFor<M> ctx(arena);
  ForwardOptions<T> o;
  o.node_outputs = delta.data();
  result.corrupted_metric = double(metric(ctx, model.forward(ctx, task.corrupted, o), task.data).value[0]);
  require_finite_metrics(result);
  return result;
}

template <GradientPolicy Policy, class M, class Metric, class T = typename M::scalar>
Attribution attribute_gradients_whole(const M& model, const PatchingTask<T>& task, const Metric& metric, const Policy& policy,
                                      AttributionBuffers<T>& buffers) {
  using Kernels = typename M::backend;
  const Graph graph = model.graph();
  const std::size_t BPD = task.clean.rows() * model.config().n_embd;
  const std::vector<GradientRun> runs = policy.gradient_runs();
  GradientRules rules;  // the exact gradient, unless the policy changes the backward (GIM)
  if constexpr (requires { { policy.gradient_rules() } -> std::same_as<GradientRules>; }) rules = policy.gradient_rules();
  // Delta = out(x') - out(x)  [n_upstream, B*P*D]: the corrupted run writes it, a clean run
  // subtracts. That clean run is the first plain-clean gradient run when there is one (its
  // sinks only fire in the backward, after the whole forward), else a forward of its own.
  Attribution result = start_attribution(model, graph, task, metric, Policy::name, buffers);
  std::vector<T>& delta = buffers.delta;
  const std::vector<T> corrupted_input(delta.begin(), delta.begin() + static_cast<std::ptrdiff_t>(BPD));  // e(x')
  auto fused = std::find_if(runs.begin(), runs.end(), [](const GradientRun& r) { return !r.corrupted_input && r.interpolation == 1.0; });
  if (fused != runs.begin()) {
    ArenaFor<M> arena;
    ContextFor<M> ctx(arena);
    ForwardOptions<T> o;
    o.node_outputs = delta.data();
    o.subtract_node_outputs = true;
    model.forward(ctx, task.clean, o);
    fused = runs.end();
  }

  std::vector<T> input(BPD);  // the interpolated input node of eap-ig  [B*P*D]
  std::vector<T> stage_scores;
  ArenaFor<M> arena;
  for (auto run = runs.begin(); run != runs.end(); ++run) {
    arena.reset();
    Tape<T> tape(arena);
    ContextFor<M, true> ctx(arena, tape);
    ctx.set_rules(&rules);
    ForwardOptions<T> o;
    if (run == fused) {
      o.node_outputs = delta.data();
      o.subtract_node_outputs = true;
    }
    if (run->interpolation != 1.0) {  // e(x') + a (e(x) - e(x')) = e(x') - a Delta_input
      Kernels::copy(BPD, corrupted_input.data(), input.data());
      Kernels::axpy(BPD, -T(run->interpolation), delta.data(), input.data());
      o.input_override = input.data();
    }
    const double weight = run->weight;
    o.port_gradients = [&](std::size_t first, const T* grads, std::size_t n) {
      const std::size_t U = graph.edges_into(static_cast<int>(first)).size();
      stage_scores.resize(U * n);
      Kernels::gemm_nt_long_inner(U, n, BPD, delta.data(), grads, stage_scores.data());
      for (std::size_t u = 0; u < U; ++u)
        for (std::size_t i = 0; i < n; ++i)
          result.edge_scores[static_cast<std::size_t>(graph.edge_index(static_cast<int>(u), static_cast<int>(first + i)))] +=
              weight * double(stage_scores[u * n + i]);
    };
    const Batch& batch = run->corrupted_input ? task.corrupted : task.clean;
    Var<T> logits = model.forward(ctx, batch, o);
    tape.backward(metric(ctx, logits, task.data));
  }
  result.compute_node_scores(graph);
  return result;
}

}  // namespace detail

namespace detail {

/// Scores the task in `parts` parts of equal numbers of examples, `whole(part, buffers)` scoring
/// one; part k holds examples [k B / parts, (k + 1) B / parts) and its scores and corrupted metric
/// count by its share of the examples. With a Distribution, part k runs on rank k % size; every
/// rank then sums every part's scores in part order, the one-process sum, so the bytes are the
/// same on any number of ranks.
template <class M, class Metric, class Whole, class T = typename M::scalar>
Attribution attribute_in_parts(const M& model, const PatchingTask<T>& task, const Metric& metric, const std::string& method,
                               std::size_t parts, const Distribution* split, Whole&& whole) {
  AttributionBuffers<T> buffers;
  if (parts == 1) return whole(task, buffers);
  const std::size_t B = task.clean.batch;
  Attribution result;
  result.method = method;
  result.edge_scores.assign(model.graph().n_edges(), 0.0);
  result.clean_metric = metric_value(metric, task.clean_logits, task.data);
  std::size_t most_examples = 0;  // in one part: Delta's buffer is reserved for it, so no part reallocates it
  for (std::size_t k = 0; k < parts; ++k) most_examples = std::max(most_examples, (k + 1) * B / parts - k * B / parts);
  buffers.delta.reserve(model.n_upstream() * most_examples * task.clean.pos * model.config().n_embd);
  if (split && split->size() <= 1) split = nullptr;
  std::vector<std::string> part_results(parts);  // the part's corrupted metric, then its edge scores
  const std::size_t E = result.edge_scores.size();
  for (std::size_t k = 0; k < parts; ++k) {
    if (split && !split->owns(k)) continue;
    const Attribution part = whole(task_examples(task, k * B / parts, (k + 1) * B / parts), buffers);
    append_bytes(part_results[k], &part.corrupted_metric, 1), append_bytes(part_results[k], part.edge_scores.data(), E);
  }
  if (split) split->share(part_results);
  std::vector<double> part_scores(E);
  for (std::size_t k = 0; k < parts; ++k) {
    const double share = double((k + 1) * B / parts - k * B / parts) / double(B);
    double part_corrupted = 0;
    std::size_t at = 0;
    read_bytes(part_results[k], at, &part_corrupted, 1), read_bytes(part_results[k], at, part_scores.data(), E);
    for (std::size_t e = 0; e < E; ++e) result.edge_scores[e] += share * part_scores[e];
    result.corrupted_metric += share * part_corrupted;
  }
  result.compute_node_scores(model.graph());
  return result;
}

}  // namespace detail

template <GradientPolicy Policy, class M, class Metric, class T = typename M::scalar>
Attribution attribute_gradients(const M& model, const PatchingTask<T>& task, const Metric& metric, const Policy& policy) {
  std::size_t parts = 1;
  if constexpr (metric_is_mean_over_examples<Metric> && requires { policy.memory_budget; })
    parts = attribution_parts(model, task.clean, policy.memory_budget);
  const Distribution* split = nullptr;
  if constexpr (requires { policy.distribution; }) split = policy.distribution;
  return detail::attribute_in_parts(model, task, metric, Policy::name, parts, split,
                                    [&](const PatchingTask<T>& part, detail::AttributionBuffers<T>& buffers) {
                                      return detail::attribute_gradients_whole(model, part, metric, policy, buffers);
                                    });
}

}  // namespace circuitry
