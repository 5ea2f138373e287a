#pragma once
// Faithfulness curves and the MIB circuit-track areas (Mueller et al. 2025, "MIB: A
// Mechanistic Interpretability Benchmark"): for each circuit size, the top edges by |score|
// (dead ends removed), evaluated with every edge outside the circuit patched; CPR is the
// area under f, CMD the area under |1 - f| (circuits/evaluation.hpp).
#include <string>
#include <vector>

#include "circuitry/circuits/evaluation.hpp"
#include "circuitry/core/distribution.hpp"
#include "circuitry/circuits/pruning.hpp"
#include "circuitry/patching/edge_patching.hpp"

namespace circuitry {

struct FaithfulnessCurve {
  std::vector<CurvePoint> points;        // fraction of all edges -> faithfulness
  std::vector<std::size_t> edges_kept;   // edges in each circuit after dead ends were removed
  double m_full = 0, m_empty = 0;        // M(clean) and M(every edge patched)
  double cpr = 0, cmd = 0;
};

/// Faithfulness of top_n(scores, k) for each k in `counts` (ascending). With a Distribution the
/// circuits are evaluated over processes, circuit i on rank i % size (core/distribution.hpp), and
/// every rank returns the whole curve.
template <class M, class Metric, class T = typename M::scalar>
FaithfulnessCurve faithfulness_curve_at(const M& model, const PatchingTask<T>& task, const Metric& metric, const std::vector<double>& scores,
                                        const std::vector<std::size_t>& counts, bool remove_dead_ends = true,
                                        const Distribution* distribution = nullptr) {
  const Graph graph = model.graph();
  const auto source = ablation_source(model, task, Ablation::Resample);
  FaithfulnessCurve curve;
  curve.m_full = metric_value(metric, task.clean_logits, task.data);
  EdgePatchRuns<M, T> runs(model, task, source);
  curve.m_empty = runs.evaluate(metric, std::vector<std::uint8_t>(graph.n_edges(), 0)).metric;
  const Distribution* split = distribution && distribution->size() > 1 ? distribution : nullptr;
  std::vector<std::string> circuits(counts.size());  // each circuit's M and its edge count
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (split && !split->owns(i)) continue;
    Circuit c = top_n(graph, scores, counts[i]);
    if (remove_dead_ends) prune_dead_ends(c);
    const double m = runs.evaluate(metric, c.in_graph).metric;
    const std::size_t kept = c.n_edges();
    append_bytes(circuits[i], &m, 1), append_bytes(circuits[i], &kept, 1);
  }
  if (split) split->share(circuits);
  for (std::size_t i = 0; i < counts.size(); ++i) {
    double m = 0;
    std::size_t kept = 0, at = 0;
    read_bytes(circuits[i], at, &m, 1), read_bytes(circuits[i], at, &kept, 1);
    curve.points.push_back({double(counts[i]) / double(graph.n_edges()), faithfulness(m, curve.m_empty, curve.m_full)});
    curve.edges_kept.push_back(kept);
  }
  curve.cpr = cpr(curve.points);
  curve.cmd = cmd(curve.points);
  return curve;
}

/// The MIB curve: circuits of the top 0.1%, 0.2%, ..., 100% of edges.
template <class M, class Metric, class T = typename M::scalar>
FaithfulnessCurve faithfulness_curve(const M& model, const PatchingTask<T>& task, const Metric& metric, const std::vector<double>& scores,
                                     const Distribution* distribution = nullptr) {
  const std::size_t n = model.graph().n_edges();
  std::vector<std::size_t> counts;
  for (double f : mib_fractions) counts.push_back(mib_edge_count(f, n));
  FaithfulnessCurve curve = faithfulness_curve_at(model, task, metric, scores, counts, true, distribution);
  for (std::size_t i = 0; i < counts.size(); ++i) curve.points[i].fraction = mib_fractions[i];  // MIB's x, not k / n
  curve.cpr = cpr(curve.points);
  curve.cmd = cmd(curve.points);
  return curve;
}

}  // namespace circuitry
