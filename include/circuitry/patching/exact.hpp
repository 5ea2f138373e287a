#pragma once
// The exact effect of patching each edge, M(clean with u->p patched) - M(clean), computed
// the way ACDC would but batched: a patch at port p changes nothing before p's layer, so
// each patched run restarts from the clean run's cached residual at p's stage:
//   p = q/k/v of head (l, h): recompute head h with that one input changed, then
//                             resid_mid[l] + (out'_h - out_h) -> MLP l, layers l+1..
//   p = m{l}:                 recompute MLP l, then resid_post[l] + (m' - m) -> layers l+1..
//   p = logits:               final norm of resid_final + Delta_u only.
// Many edges share one forward as "lanes" stacked along the batch dimension.
#include <functional>
#include <vector>

#include "circuitry/patching/attribution.hpp"

namespace circuitry {

struct ExactPatching {
  static constexpr const char* name = "exact";
  std::size_t max_rows = 8192;  // lanes per forward = max_rows / (batch * pos)
  std::function<void(std::size_t done, std::size_t total)> progress;
};

template <class M, class Metric, class T = typename M::scalar>
Attribution attribute_exact(const M& model, const PatchingTask<T>& task, const Metric& metric, const ExactPatching& policy = {}) {
  using Arch = typename M::architecture;
  const Graph graph = model.graph();
  const auto& c = model.config();
  const std::size_t B = task.clean.batch, P = task.clean.pos, D = c.n_embd, L = c.n_layer;
  const std::size_t BPD = B * P * D;

  // Clean run with residuals and node outputs; corrupted node outputs; Delta.
  RecordedRun<T> clean = record_run(model, task.clean);
  const std::vector<T>& clean_out = clean.node_outputs;  // [n_upstream, B*P*D]
  const std::vector<T>& resid = clean.residuals;         // [2L + 1, B*P*D]
  std::vector<T> delta = node_outputs(model, task.corrupted);
  for (std::size_t i = 0; i < delta.size(); ++i) delta[i] -= clean_out[i];

  Attribution result;
  result.method = ExactPatching::name;
  result.edge_scores.assign(graph.n_edges(), 0.0);
  result.clean_metric = metric_value(metric, task.clean_logits, task.data);
  {
    Arena arena;
    Context<T, false> ctx(arena);
    result.corrupted_metric = double(metric(ctx, model.forward(ctx, task.corrupted), task.data).value[0]);
  }
  require_finite_metrics(result);

  // Group edges by the stage their patched run restarts at.
  std::vector<std::vector<int>> by_stage(residual_stages(L) + 1);
  for (std::size_t e = 0; e < graph.n_edges(); ++e) {
    const auto& port = graph.ports()[static_cast<std::size_t>(graph.edges()[e].port)];
    const std::size_t l = static_cast<std::size_t>(port.layer);
    const std::size_t stage = port.kind == PortKind::Logits ? residual_stages(L)  // logits: no layers to rerun
                              : port.kind == PortKind::Mlp  ? 2 * l + 2
                                                            : M::stage_after_heads(l);
    by_stage[stage].push_back(static_cast<int>(e));
  }

  const std::size_t lanes_per_run = std::max<std::size_t>(1, policy.max_rows / (B * P));
  std::size_t done = 0;
  Arena arena;
  const ops::KeyMask mask = model.key_mask(task.clean);
  std::vector<T> x(BPD), node(BPD);
  for (std::size_t stage = 0; stage < by_stage.size(); ++stage) {
    const auto& edges = by_stage[stage];
    for (std::size_t first = 0; first < edges.size(); first += lanes_per_run) {
      const std::size_t K = std::min(lanes_per_run, edges.size() - first);
      arena.reset();
      std::vector<T> start(K * BPD);  // [K * B, P, D]
      std::vector<T> logits;          // [K * R, vocab] (R readout rows per lane)
      for (std::size_t k = 0; k < K; ++k) {
        const Edge& edge = graph.edges()[static_cast<std::size_t>(edges[first + k])];
        const auto& port = graph.ports()[static_cast<std::size_t>(edge.port)];
        const T* d = delta.data() + static_cast<std::size_t>(edge.upstream) * BPD;
        T* s = start.data() + k * BPD;
        if (port.kind == PortKind::Logits) {
          for (std::size_t i = 0; i < BPD; ++i) s[i] = resid[2 * L * BPD + i] + d[i];
          continue;
        }
        const std::size_t l = static_cast<std::size_t>(port.layer);
        if (port.kind == PortKind::Mlp) {
          for (std::size_t i = 0; i < BPD; ++i) x[i] = resid[(2 * l + 1) * BPD + i] + d[i];
          if constexpr (Arch::has_mlp) mlp_output(model, l, x.data(), B * P, arena, node.data());
          const T* old = clean_out.data() + static_cast<std::size_t>(graph.mlp_node(l)) * BPD;
          for (std::size_t i = 0; i < BPD; ++i) s[i] = resid[(2 * l + 2) * BPD + i] + node[i] - old[i];
        } else {
          const std::size_t h = static_cast<std::size_t>(port.head);
          const T* pre = resid.data() + 2 * l * BPD;
          for (std::size_t i = 0; i < BPD; ++i) x[i] = pre[i] + d[i];
          const T* in[3] = {pre, pre, pre};
          in[static_cast<std::size_t>(port.kind)] = x.data();
          head_output(model, l, h, in[0], in[1], in[2], B, P, mask, arena, node.data());
          const T* old = clean_out.data() + static_cast<std::size_t>(graph.head_node(l, h)) * BPD;
          const T* after = resid.data() + M::stage_after_heads(l) * BPD;  // holds the clean head output
          for (std::size_t i = 0; i < BPD; ++i) s[i] = after[i] + node[i] - old[i];
        }
      }
      // One forward for all K lanes from this stage.
      const Batch lanes = task.clean.lanes(K);
      if (stage == residual_stages(L)) {
        logits = logits_from_residual(model, start.data(), K * B, P, lanes.readout, arena);
      } else {
        Context<T, false> ctx(arena);
        ForwardOptions<T> o;
        o.start_residual = start.data();
        o.start_stage = stage;
        Var<T> out = model.forward(ctx, lanes, o);
        logits.assign(out.value, out.value + out.numel());
      }
      const std::size_t RV = task.clean.readout.size() * c.n_outputs();  // one lane's logits
      for (std::size_t k = 0; k < K; ++k) {
        std::vector<T> lane(logits.begin() + static_cast<std::ptrdiff_t>(k * RV),
                            logits.begin() + static_cast<std::ptrdiff_t>((k + 1) * RV));
        result.edge_scores[static_cast<std::size_t>(edges[first + k])] = metric_value(metric, lane, task.data) - result.clean_metric;
      }
      done += K;
      if (policy.progress) policy.progress(done, graph.n_edges());
    }
  }
  result.compute_node_scores(graph);
  return result;
}

}  // namespace circuitry
