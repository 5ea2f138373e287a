#pragma once
// The exact effect of patching each edge, M(clean with u->p patched) - M(clean), computed
// the way ACDC would but batched and streamed: one patched run per edge, each a lane of the
// patched-lanes engine (patching/patched_lanes.hpp). Patching u->p changes only what p reads,
// so a lane restarts at p's layer from the clean run's residual; in that layer it recomputes
// only p's node (head h alone, its q, k or v reading the patched input; or the MLP), the layers
// above on its lanes, the last layer at the readout rows. The lanes per run follow from a
// memory budget (ExactPatching::memory_budget) whatever the depth.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "circuitry/core/distribution.hpp"
#include "circuitry/patching/attribution.hpp"
#include "circuitry/patching/patched_lanes.hpp"

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
  /// Splits the groups of lanes over processes (core/distribution.hpp): group g runs on rank
  /// g % size and every rank returns every score. Null: all in this process.
  const Distribution* distribution = nullptr;
};

/// What exact patching's working memory is made of, in bytes.
struct ExactMemory {
  /// Held for the whole run: the clean run's node outputs and residuals, the corrupted node
  /// outputs and the deltas out_u(x') - out_u(x), (3 n_upstream + 2L + 1) copies of [batch, pos, d_model].
  std::size_t fixed = 0;
  /// One lane: its buffers (the residual, the heads' sum, a node's output, three port inputs and
  /// a sum of diffs: seven [batch, pos, d_model]), one layer's activations (norms, q|k|v,
  /// pattern, z, MLP hidden) and its readout logits [readout rows, vocab].
  std::size_t per_lane = 0;
};

template <class M>
ExactMemory exact_memory(const M& model, const Batch& clean) {
  using T = typename M::scalar;
  const ModelConfig& c = model.config();
  const std::size_t rows = clean.batch * clean.pos, D = c.n_embd, L = c.n_layer;
  const std::size_t layer = rows * layer_activations_per_token(model, clean.pos);
  ExactMemory m;
  m.fixed = (3 * model.n_upstream() + residual_stages(L)) * rows * D * sizeof(T);
  m.per_lane = (7 * rows * D + layer + clean.readout.size() * c.n_outputs()) * sizeof(T);
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
  const Graph graph = model.graph();
  const std::size_t E = graph.n_edges();
  require(policy.edges.empty() || policy.edges.size() == E, "exact patching: one edge flag per edge expected");

  Attribution result;
  result.method = ExactPatching::name;
  result.edge_scores.assign(E, 0.0);
  result.clean_metric = metric_value(metric, task.clean_logits, task.data);
  {
    ArenaFor<M> arena;
    ContextFor<M> ctx(arena);
    result.corrupted_metric = double(metric(ctx, model.forward(ctx, task.corrupted), task.data).value[0]);
  }
  require_finite_metrics(result);
  // Each lane patches one edge from the corrupted run's output of its upstream node.
  const PatchedLanes<M, T> lanes(model, task, node_outputs(model, task.corrupted));

  // The edges in port order (ports are numbered layer by layer, the logits last), so that lanes
  // into one port are neighbours and recompute their node in one batched call; a group of lanes
  // never spans two layers, as a group restarts at its first lane's layer.
  std::vector<int> order;
  for (std::size_t e = 0; e < E; ++e)
    if (policy.edges.empty() || policy.edges[e]) order.push_back(static_cast<int>(e));
  auto port_of = [&](int e) { return graph.edges()[static_cast<std::size_t>(e)].port; };
  auto layer_of = [&](int e) { return graph.ports()[static_cast<std::size_t>(port_of(e))].layer; };
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return port_of(a) < port_of(b); });

  const std::size_t K_max = exact_lanes(model, task.clean, policy);
  std::vector<std::vector<std::uint8_t>> masks(K_max, std::vector<std::uint8_t>(E, 0));  // one edge flagged in each
  std::vector<const std::uint8_t*> lane_masks;
  ExactCheckpoint state{K_max, 0, 0, {}};
  if (policy.resume) {
    const ExactCheckpoint& r = *policy.resume;
    require(r.edge_scores.size() == E, "exact patching: the checkpoint holds " + std::to_string(r.edge_scores.size()) +
                                           " edge scores, the model has " + std::to_string(E) + " edges");
    require(r.lanes_per_forward == K_max, "exact patching: the checkpoint was made with " + std::to_string(r.lanes_per_forward) +
                                              " lanes per forward, this run has " + std::to_string(K_max) +
                                              " (resume with the memory budget the run had)");
    state = r;
    result.edge_scores = r.edge_scores;
  }
  // Groups of lanes in the run's fixed order: [first, first + K) of `order`, within one layer.
  std::vector<std::pair<std::size_t, std::size_t>> groups;
  for (std::size_t first = 0; first < order.size();) {
    std::size_t K = 1;
    while (K < K_max && first + K < order.size() && layer_of(order[first + K]) == layer_of(order[first])) ++K;
    groups.emplace_back(first, K);
    first += K;
  }
  const Distribution* split = policy.distribution && policy.distribution->size() > 1 ? policy.distribution : nullptr;
  require(!split || (!policy.resume && !policy.checkpoint), "exact patching: checkpoints are for one process; run on one rank to resume");
  std::size_t my_edges = 0;  // the progress total: the edges of this rank's groups
  for (std::size_t g = 0; g < groups.size(); ++g)
    if (!split || split->owns(g)) my_edges += groups[g].second;
  Arena arena;
  for (std::size_t group = 0; group < groups.size(); ++group) {
    if (group < state.groups_done) continue;  // scored before the checkpoint
    if (split && !split->owns(group)) continue;
    const auto [first, K] = groups[group];
    const int* lane_edge = order.data() + first;
    lane_masks.clear();
    for (std::size_t k = 0; k < K; ++k) {
      masks[k][static_cast<std::size_t>(lane_edge[k])] = 1;
      lane_masks.push_back(masks[k].data());
    }
    std::vector<T> logits = lanes.run(port_of(lane_edge[0]), lane_masks);  // [K * R, vocab]
    for (std::size_t k = 0; k < K; ++k) masks[k][static_cast<std::size_t>(lane_edge[k])] = 0;
    // Each lane's metric (metric_value's computation, on a view of the lane's logits and in this arena).
    const std::size_t RV = logits.size() / K;  // one lane's logits
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
    if (policy.progress) policy.progress(state.edges_done, split ? my_edges : order.size());
  }
  if (split) {  // every group's scores from the rank that computed them
    std::vector<std::string> items(groups.size());
    for (std::size_t g = 0; g < groups.size(); ++g)
      for (std::size_t k = 0; k < groups[g].second && split->owns(g); ++k)
        append_bytes(items[g], &result.edge_scores[static_cast<std::size_t>(order[groups[g].first + k])], 1);
    split->share(items);
    for (std::size_t g = 0; g < groups.size(); ++g) {
      std::size_t at = 0;
      for (std::size_t k = 0; k < groups[g].second; ++k)
        read_bytes(items[g], at, &result.edge_scores[static_cast<std::size_t>(order[groups[g].first + k])], 1);
    }
    state.edges_done = order.size();
  }
  require(!policy.resume || state.edges_done == order.size(), "exact patching: the checkpoint does not match this run's edges");
  result.compute_node_scores(graph);
  return result;
}

}  // namespace circuitry
