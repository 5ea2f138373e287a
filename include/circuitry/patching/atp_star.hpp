#pragma once
// AtP* (Kramar et al. 2024, "AtP*: An efficient and scalable method for localizing LLM behaviour
// to components", arXiv 2403.00745) at edge level: attribution patching (EAP's score,
// patching/attribution.hpp, eq. 4 of the paper) with its two fixes, each switchable.
//   QK fix (section 3.1.1; patching/qk_fix.hpp): the edges into q and k ports are scored by the
//     exact change of the head's attention pattern times d M / d pattern.
//   GradDrop (section 3.1.2, eq. 11): the estimate is made L times, the l-th with the gradient
//     through layer l's outputs (its heads and its MLP) dropped (ops/gradient_rules.hpp), and the
//     scores are the mean of their per-example magnitudes:
//       score(e) = 1 / (L - 1) sum_l sum_b |c_{l,b}(e)|
//     where c_{l,b}(e) is example b's term of the l-th estimate (M is the mean over examples, so
//     each term carries its 1/B). Dropping the layer an edge's port belongs to zeroes that
//     estimate, and the layers below it leave it unchanged: hence L - 1. With GradDrop the
//     scores are magnitudes (>= 0); without it they keep EAP's sign, and with neither fix this
//     is EAP, bit for bit. A one-layer model has no later layer to drop: GradDrop is off there.
// Cost: one corrupted forward and, per estimate, one clean forward-backward (L with GradDrop);
// the QK fix adds one norm and projection of the residual per (node, later layer) and one
// pattern per edge into q or k.
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "circuitry/patching/attribution.hpp"
#include "circuitry/patching/qk_fix.hpp"

namespace circuitry {

struct AtpStar {
  static constexpr const char* name = "atp-star";
  bool qk_fix = true;
  bool grad_drop = true;
  std::size_t memory_budget = kAttributionMemoryBudget;
  const Distribution* distribution = nullptr;  // the parts over processes, as the gradient methods'
};

/// Bytes of AtP*'s working memory per example: attribution patching's, and with the QK fix every
/// estimate's d M / d pattern of every layer.
template <class M>
std::size_t atp_star_memory_per_example(const M& model, const Batch& clean, const AtpStar& policy) {
  const ModelConfig& c = model.config();
  const std::size_t estimates = policy.grad_drop && c.n_layer >= 2 ? c.n_layer : 1;
  const std::size_t patterns = policy.qk_fix ? estimates * c.n_layer * c.n_head * clean.pos * clean.pos : 0;
  return attribution_memory_per_example(model, clean) + patterns * sizeof(typename M::scalar);
}

namespace detail {

template <class M, class Metric, class T = typename M::scalar>
Attribution atp_star_whole(const M& model, const PatchingTask<T>& task, const Metric& metric, const AtpStar& policy,
                           AttributionBuffers<T>& buffers) {
  using Kernels = typename M::backend;
  const Graph graph = model.graph();
  const ModelConfig& c = model.config();
  const std::size_t L = c.n_layer, B = task.clean.batch, P = task.clean.pos, D = c.n_embd, H = c.n_head;
  const std::size_t PD = P * D, BPD = B * PD, BHPP = B * H * P * P;
  const bool grad_drop = policy.grad_drop && L >= 2;  // one layer: no later layer to drop
  const std::size_t R = grad_drop ? L : 1;            // estimates: one per dropped layer, or the plain one
  Attribution result = start_attribution(model, graph, task, metric, AtpStar::name, buffers);
  std::vector<T>& delta = buffers.delta;  // Delta = out(x') - out(x)  [n_upstream, B*P*D], completed by the first clean run

  // One term c_{r,b}(e) of estimate r: summed with its sign (no GradDrop) or as a magnitude.
  auto add_term = [&](int edge, double term) { result.edge_scores[static_cast<std::size_t>(edge)] += grad_drop ? std::abs(term) : term; };
  auto qk_port = [&](std::size_t port) {
    const PortKind kind = graph.ports()[port].kind;
    return policy.qk_fix && (kind == PortKind::Q || kind == PortKind::K);
  };
  std::vector<T> residuals(policy.qk_fix ? residual_stages(L) * BPD : 0);  // [2L + 1, B*P*D] the clean run's
  std::vector<T> pattern_grads(policy.qk_fix ? R * L * BHPP : 0);          // [R, L, B, H, P, P] d M / d pattern
  std::vector<T> stage_scores;
  GradientRules rules;
  ArenaFor<M> arena;
  for (std::size_t r = 0; r < R; ++r) {
    arena.reset();
    Tape<T> tape(arena);
    ContextFor<M, true> ctx(arena, tape);
    rules.detached_layer = grad_drop ? r : GradientRules::no_layer;
    ctx.set_rules(&rules);
    ForwardOptions<T> o;
    if (r == 0) {  // the first clean run also completes Delta and records the residuals
      o.node_outputs = delta.data();
      o.subtract_node_outputs = true;
      if (policy.qk_fix) o.residuals = residuals.data();
    }
    std::map<std::string, Var<T>> activations;
    if (policy.qk_fix) o.activations = &activations;
    o.port_gradients = [&](std::size_t first, const T* grads, std::size_t n) {
      const std::size_t U = graph.edges_into(static_cast<int>(first)).size();
      stage_scores.resize(U * n);
      auto add_stage = [&] {
        for (std::size_t i = 0; i < n; ++i)
          if (!qk_port(first + i))
            for (std::size_t u = 0; u < U; ++u) add_term(graph.edge_index(static_cast<int>(u), static_cast<int>(first + i)), double(stage_scores[u * n + i]));
      };
      if (!grad_drop) {  // EAP's product over all examples at once
        Kernels::gemm_nt_long_inner(U, n, BPD, delta.data(), grads, stage_scores.data());
        add_stage();
        return;
      }
      for (std::size_t b = 0; b < B; ++b) {  // example b's terms: Delta_u . g_p over its positions
        Kernels::gemm(Trans::No, Trans::Yes, U, n, PD, T(1), delta.data() + b * PD, BPD, grads + b * PD, BPD, T(0), stage_scores.data(), n);
        add_stage();
      }
    };
    tape.backward(metric(ctx, model.forward(ctx, task.clean, o), task.data));
    if (policy.qk_fix)
      for (std::size_t l = 0; l < L; ++l)
        Kernels::copy(BHPP, tape.grad(activations.at("blocks." + std::to_string(l) + ".attn.hook_pattern")),
                      pattern_grads.data() + (r * L + l) * BHPP);
  }
  if (policy.qk_fix)
    for (std::size_t l = 0; l < L; ++l)
      qk_fix_layer(model, task.clean, l, residuals.data() + 2 * l * BPD, delta.data(), pattern_grads.data() + l * BHPP, R, L * BHPP,
                   [&](std::size_t u, std::size_t h, PortKind kind, std::size_t, std::size_t, double term) {
                     add_term(graph.edge_index(static_cast<int>(u), graph.head_port(l, h, kind)), term);
                   });
  if (grad_drop)
    for (double& s : result.edge_scores) s /= double(L - 1);
  result.compute_node_scores(graph);
  return result;
}

}  // namespace detail

/// AtP* scores of every edge; a task larger than the memory budget runs in parts (as the gradient
/// methods do), possibly over processes.
template <class M, class Metric, class T = typename M::scalar>
Attribution attribute_atp_star(const M& model, const PatchingTask<T>& task, const Metric& metric, const AtpStar& policy) {
  std::size_t parts = 1;
  if constexpr (metric_is_mean_over_examples<Metric>) {
    const std::size_t fit = std::max<std::size_t>(1, policy.memory_budget / atp_star_memory_per_example(model, task.clean, policy));
    parts = (task.clean.batch + fit - 1) / fit;
  }
  return detail::attribute_in_parts(model, task, metric, AtpStar::name, parts, policy.distribution,
                                    [&](const PatchingTask<T>& part, detail::AttributionBuffers<T>& buffers) {
                                      return detail::atp_star_whole(model, part, metric, policy, buffers);
                                    });
}

}  // namespace circuitry
