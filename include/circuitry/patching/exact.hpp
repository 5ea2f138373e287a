#pragma once
// The exact effect of patching each edge, M(clean with u->p patched) - M(clean), computed
// the way ACDC would but batched and streamed.
//
// Why a patched run may restart at the receiver's layer: patching u->p changes only what p
// reads. Everything computed before p's layer does not read p, so it is the clean run's, bit
// for bit, and the clean run's cached residual at p's stage is where the patched run starts:
//   p = q/k/v of head (l, h): only head h reads the changed input, so only head h's pattern
//                             and output change; the layer's other heads are the clean ones.
//                             Recompute head h alone, then resid_mid[l] + (out'_h - out_h)
//                             -> MLP l, layers l+1.. (a parallel block's MLP reads the layer's
//                             input, which is unchanged: start at layer l+1's input instead).
//   p = m{l}:                 recompute MLP l, then resid_post[l] + (m' - m) -> layers l+1..
//   p = logits:               final norm of resid_final + Delta_u only.
// Many edges share one forward as "lanes" stacked along the batch dimension, each lane one
// edge's patched run. The forward runs a layer at a time (ForwardOptions::stop_stage): only
// one layer's activations of the lanes are held at once, so memory is bounded by a budget
// (ExactPatching::memory_budget) whatever the depth, and the lanes per forward follow from it.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include "circuitry/patching/attribution.hpp"

namespace circuitry {

/// How far an exact-patching run has got: what a checkpoint holds so that a later run of the same
/// model, task and policy can carry on where this one stopped. Edges are scored in groups of
/// lanes in a fixed order (by restart stage, then receiver), so a resumed run skips the groups
/// done and computes the others exactly as an unbroken run would: the same bytes.
struct ExactCheckpoint {
  std::size_t lanes_per_forward = 0;  // the groups' size: a resumed run must use the same
  std::size_t groups_done = 0;
  std::size_t edges_done = 0;
  std::vector<double> edge_scores;  // per edge; the edges of groups not yet done hold 0
};

struct ExactPatching {
  static constexpr const char* name = "exact";
  /// Working memory in bytes (exact_memory() says what is counted): the lanes per forward are
  /// as many as fit. Below the memory of one lane it runs one lane, the least it can use.
  std::size_t memory_budget = std::size_t{2048} << 20;
  /// At most this many rows (lanes * batch * pos) per forward: more rows than this no longer
  /// make the GEMMs faster, only the buffers larger.
  std::size_t max_rows = 8192;
  /// One flag per edge: score only the flagged edges (empty: every edge); the others score 0.
  std::vector<std::uint8_t> edges;
  std::function<void(std::size_t done, std::size_t total)> progress;
  /// Called after every group of lanes with the state so far (to write a checkpoint).
  std::function<void(const ExactCheckpoint&)> checkpoint;
  /// Carries on from a checkpoint of an earlier run of the same model, task and policy.
  const ExactCheckpoint* resume = nullptr;
};

/// What exact patching's working memory is made of, in bytes.
struct ExactMemory {
  /// Held for the whole run: the clean run's node outputs and residuals and the deltas
  /// out_u(x') - out_u(x), (2 n_upstream + 2L + 1) copies of [batch, pos, d_model].
  std::size_t fixed = 0;
  /// One lane: its buffers (the start residual and the next, the recomputed node's two inputs
  /// and its output: five [batch, pos, d_model]), one layer's activations (norms, q|k|v, pattern,
  /// z, MLP hidden) and its readout logits [readout rows, vocab].
  std::size_t per_lane = 0;
};

template <class M>
ExactMemory exact_memory(const M& model, const Batch& clean) {
  using T = typename M::scalar;
  const ModelConfig& c = model.config();
  const std::size_t rows = clean.batch * clean.pos, D = c.n_embd, L = c.n_layer;
  const std::size_t layer = rows * layer_activations_per_token(model, clean.pos);
  ExactMemory m;
  m.fixed = (2 * model.n_upstream() + residual_stages(L)) * rows * D * sizeof(T);
  m.per_lane = (5 * rows * D + layer + clean.readout.size() * c.n_outputs()) * sizeof(T);
  return m;
}

/// Lanes per forward: as many as the budget holds after the fixed part, at most max_rows rows,
/// at least one. It depends on the shapes and the policy only, never on the thread count, so the
/// scores are the same bytes whatever --threads says; the threads share each forward's GEMM
/// blocks (8192 rows: 64 row blocks) and the lanes' preparation.
template <class M>
std::size_t exact_lanes(const M& model, const Batch& clean, const ExactPatching& policy) {
  const ExactMemory m = exact_memory(model, clean);
  const std::size_t by_budget = policy.memory_budget > m.fixed ? (policy.memory_budget - m.fixed) / m.per_lane : 0;
  const std::size_t by_rows = policy.max_rows / (clean.batch * clean.pos);
  return std::max<std::size_t>(1, std::min(by_budget, by_rows));
}

template <class M, class Metric, class T = typename M::scalar>
Attribution attribute_exact(const M& model, const PatchingTask<T>& task, const Metric& metric, const ExactPatching& policy = {}) {
  using Arch = typename M::architecture;
  using Kernels = DefaultBackend;
  const Graph graph = model.graph();
  const auto& c = model.config();
  const std::size_t B = task.clean.batch, P = task.clean.pos, D = c.n_embd, L = c.n_layer;
  const std::size_t BPD = B * P * D;
  require(policy.edges.empty() || policy.edges.size() == graph.n_edges(), "exact patching: one edge flag per edge expected");

  // Clean run with residuals and node outputs; corrupted node outputs; Delta.
  RecordedRun<T> clean = record_run(model, task.clean);
  const std::vector<T>& clean_out = clean.node_outputs;  // [n_upstream, B, P, D]
  const std::vector<T>& resid = clean.residuals;         // [2L + 1, B, P, D]
  std::vector<T> delta = node_outputs(model, task.corrupted);  // [n_upstream, B, P, D]
  Kernels::axpy(delta.size(), T(-1), clean_out.data(), delta.data());  // corrupted - clean

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

  // Group edges by the stage their patched run restarts at, and within a stage by receiver, so
  // that the lanes into one port are neighbours and recompute their node in one batched call.
  auto edge_port = [&](int e) { return graph.edges()[static_cast<std::size_t>(e)].port; };
  auto port_of = [&](int e) -> const DownstreamPort& { return graph.ports()[static_cast<std::size_t>(edge_port(e))]; };
  std::vector<std::vector<int>> by_stage(residual_stages(L) + 1);
  std::size_t total = 0;
  for (std::size_t e = 0; e < graph.n_edges(); ++e) {
    if (!policy.edges.empty() && !policy.edges[e]) continue;
    const DownstreamPort& port = port_of(static_cast<int>(e));
    const std::size_t l = static_cast<std::size_t>(port.layer);
    const std::size_t stage = port.kind == PortKind::Logits ? residual_stages(L)  // logits: no layers to rerun
                              : port.kind == PortKind::Mlp  ? 2 * l + 2
                                                            : M::stage_after_heads(l);
    by_stage[stage].push_back(static_cast<int>(e));
    ++total;
  }
  for (auto& edges : by_stage)
    std::stable_sort(edges.begin(), edges.end(), [&](int a, int b) { return edge_port(a) < edge_port(b); });

  // Buffers for K lanes, allocated once (fresh pages on every group cost page faults).
  const std::size_t K_max = exact_lanes(model, task.clean, policy);
  std::vector<T> start(K_max * BPD), next(K_max * BPD);  // the lanes' residual stream  [K, B, P, D]
  std::vector<T> patched(K_max * BPD);                   // the receiver's changed input [K, B, P, D]
  std::vector<T> unchanged(K_max * BPD);                 // the clean input, per lane    [K, B, P, D]
  std::vector<T> node(K_max * BPD);                      // the receiver's new output    [K, B, P, D]
  std::vector<T> logits;                                 // [K * R, vocab] (R readout rows per lane)
  ExactCheckpoint state{K_max, 0, 0, {}};
  if (policy.resume) {
    const ExactCheckpoint& r = *policy.resume;
    require(r.edge_scores.size() == graph.n_edges(), "exact patching: the checkpoint holds " + std::to_string(r.edge_scores.size()) +
                                                         " edge scores, the model has " + std::to_string(graph.n_edges()) + " edges");
    require(r.lanes_per_forward == K_max, "exact patching: the checkpoint was made with " + std::to_string(r.lanes_per_forward) +
                                              " lanes per forward, this run has " + std::to_string(K_max) +
                                              " (resume with the memory budget the run had)");
    state = r;
    result.edge_scores = r.edge_scores;
  }
  std::size_t group = 0;  // groups of lanes, counted in the run's fixed order
  Arena arena;
  for (std::size_t stage = 0; stage < by_stage.size(); ++stage) {
    const auto& edges = by_stage[stage];
    for (std::size_t first = 0; first < edges.size(); first += K_max, ++group) {
      const std::size_t K = std::min(K_max, edges.size() - first);
      const int* lane_edge = edges.data() + first;
      if (group < state.groups_done) continue;  // scored before the checkpoint
      auto delta_of = [&](std::size_t k) {  // [B, P, D]
        return delta.data() + static_cast<std::size_t>(graph.edges()[static_cast<std::size_t>(lane_edge[k])].upstream) * BPD;
      };
      // ---- each lane's residual at the restart stage ----
      // Runs of lanes [k0, k1) into one port: their changed inputs, one batched node forward, and
      // start = (clean residual after the node) + (new output - clean output).
      for (std::size_t k0 = 0; k0 < K;) {
        const DownstreamPort& port = port_of(lane_edge[k0]);
        std::size_t k1 = k0 + 1;
        while (k1 < K && edge_port(lane_edge[k1]) == edge_port(lane_edge[k0])) ++k1;
        const std::size_t n = k1 - k0;
        if (port.kind == PortKind::Logits) {
          const T* final_resid = resid.data() + 2 * L * BPD;
          parallel_tasks(k1 - k0, [&](std::size_t i) {
            Kernels::add(BPD, final_resid, delta_of(k0 + i), start.data() + (k0 + i) * BPD);
          });
          k0 = k1;
          continue;
        }
        const std::size_t l = static_cast<std::size_t>(port.layer);
        const bool is_mlp = port.kind == PortKind::Mlp;
        const T* in = resid.data() + (is_mlp ? 2 * l + 1 : 2 * l) * BPD;  // what the port reads in the clean run
        parallel_tasks(n, [&](std::size_t i) {
          Kernels::add(BPD, in, delta_of(k0 + i), patched.data() + i * BPD);
        });
        arena.reset();
        std::size_t old_node = 0;
        if (is_mlp) {
          if constexpr (Arch::has_mlp) mlp_output(model, l, patched.data(), n * B * P, arena, node.data());
          old_node = static_cast<std::size_t>(graph.mlp_node(l));
        } else {
          // Head h alone, its q, k or v reading the patched copy and the other two the clean input
          // (copied per lane: the head batches the lanes like examples). The layer's other heads
          // read nothing that changed: their clean outputs are already in `after`.
          const std::size_t h = static_cast<std::size_t>(port.head), kind = static_cast<std::size_t>(port.kind);
          parallel_tasks(n, [&](std::size_t i) { Kernels::copy(BPD, in, unchanged.data() + i * BPD); });
          const T* inputs[3] = {unchanged.data(), unchanged.data(), unchanged.data()};
          inputs[kind] = patched.data();
          head_output(model, l, h, inputs[0], inputs[1], inputs[2], n * B, P, model.key_mask(task.clean, n), arena, node.data());
          old_node = static_cast<std::size_t>(graph.head_node(l, h));
        }
        const T* old = clean_out.data() + old_node * BPD;                                  // [B, P, D]
        const T* after = resid.data() + (is_mlp ? 2 * l + 2 : M::stage_after_heads(l)) * BPD;  // holds the clean output
        parallel_tasks(n, [&](std::size_t i) {
          T* lane = start.data() + (k0 + i) * BPD;  // after + node - old
          Kernels::add(BPD, after, node.data() + i * BPD, lane);
          Kernels::axpy(BPD, T(-1), old, lane);
        });
        k0 = k1;
      }

      // ---- the K lanes from the restart stage to the logits, a layer at a time ----
      const Batch lanes = task.clean.lanes(K);
      arena.reset();
      if (stage == residual_stages(L)) {
        logits = logits_from_residual(model, start.data(), K * B, P, lanes.readout, arena);
      } else {
        // From stage `from` to the next layer's input 2(l + 1), until the pass reaches the logits.
        for (std::size_t from = stage;; from = 2 * (from / 2 + 1)) {
          arena.reset();  // the previous layer's activations are no longer needed
          Context<T, false> ctx(arena);
          ForwardOptions<T> o;
          o.start_residual = start.data();
          o.start_stage = from;
          const bool last = from / 2 + 1 >= L;  // in the last layer, or at the final norm's input
          if (!last) o.stop_stage = 2 * (from / 2 + 1);
          Var<T> out = model.forward(ctx, lanes, o);  // [K * B, P, D], or the logits [K * R, vocab]
          if (last) {
            logits.assign(out.value, out.value + out.numel());
            break;
          }
          Kernels::copy(K * BPD, out.value, next.data());
          start.swap(next);
        }
      }
      // Each lane's metric (metric_value's computation, on a view of the lane's logits and in this arena).
      const std::size_t RV = task.clean.readout.size() * c.n_outputs();  // one lane's logits
      for (std::size_t k = 0; k < K; ++k) {
        arena.reset();
        Context<T, false> ctx(arena);
        const Var<T> lane{logits.data() + k * RV, {task.data.rows, RV / task.data.rows}, nullptr};  // [R, vocab]
        result.edge_scores[static_cast<std::size_t>(lane_edge[k])] = double(metric(ctx, lane, task.data).value[0]) - result.clean_metric;
      }
      state.edges_done += K;
      ++state.groups_done;
      if (policy.checkpoint) {
        state.edge_scores = result.edge_scores;
        policy.checkpoint(state);
      }
      if (policy.progress) policy.progress(state.edges_done, total);
    }
  }
  require(!policy.resume || state.edges_done == total, "exact patching: the checkpoint does not match this run's edges");
  result.compute_node_scores(graph);
  return result;
}

}  // namespace circuitry
