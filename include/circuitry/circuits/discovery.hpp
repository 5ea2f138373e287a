#pragma once
// The circuit-discovery pipeline behind `circuitry discover` and the main job:
//   1. score every edge with eap, eap-ig and exact patching;
//   2. compare the methods: Spearman rank correlation, and each method's ROC against the
//      edges whose exact effect is large (|exact| >= 10% of the largest);
//   3. grow circuits from the top edges by |exact| and evaluate each (every edge outside it
//      patched): the faithfulness curve; keep the smallest circuit reaching the target
//      faithfulness, then remove dead ends.
// It computes only: the command line writes the report's files (apps/discovery_files.hpp).
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "circuitry/circuits/evaluation.hpp"
#include "circuitry/circuits/faithfulness_curve.hpp"
#include "circuitry/circuits/pruning.hpp"
#include "circuitry/graph/circuit.hpp"
#include "circuitry/patching.hpp"

namespace circuitry {

struct DiscoveryOptions {
  MetricKind metric = MetricKind::LogitDiff;
  std::size_t eap_ig_steps = 5;
  double target_faithfulness = 0.9;
  double large_effect_fraction = 0.1;  // "large" exact effect: |exact| >= this * max |exact|
  std::function<void(const std::string&)> log;  // progress lines (stderr in the CLI)
};

struct MethodComparison {
  std::string method;
  double spearman_vs_exact = 0;
  RocCurve roc;  // against the large-exact-effect edges
};

struct DiscoveryReport {
  std::unique_ptr<const Graph> graph;          // owned here: `circuit` points at it
  Attribution eap, eap_ig, exact;
  std::vector<MethodComparison> comparisons;
  std::size_t n_large = 0;                     // edges with a large exact effect
  std::vector<CurvePoint> faithfulness_curve;  // fraction of edges (top-k by |exact|) -> faithfulness
  std::vector<std::size_t> curve_edges;        // k for each curve point
  Circuit circuit;                             // the chosen circuit, dead ends removed
  double circuit_faithfulness = 0, circuit_metric = 0;
};

/// Runs the pipeline.
template <class M, class T = typename M::scalar>
DiscoveryReport discover(const M& model, const PatchingTask<T>& task, const DiscoveryOptions& opt) {
  auto log = [&](const std::string& s) {
    if (opt.log) opt.log(s);
  };
  DiscoveryReport r;
  r.graph = std::make_unique<const Graph>(model.graph());
  const Graph& graph = *r.graph;
  const BuiltinMetric metric{opt.metric};

  log("scoring " + std::to_string(graph.n_edges()) + " edges with eap, eap-ig (" + std::to_string(opt.eap_ig_steps) +
      " steps) and exact patching");
  r.eap = attribute(model, task, metric, Eap{});
  r.eap_ig = attribute(model, task, metric, EapIg{opt.eap_ig_steps});
  ExactPatching exact;
  exact.progress = [&](std::size_t done, std::size_t total) {
    if (done == total) log("exact patching: " + std::to_string(total) + " edges done");
  };
  r.exact = attribute(model, task, metric, exact);

  // Which edges matter: a large exact effect.
  double max_exact = 0;
  for (double s : r.exact.edge_scores) max_exact = std::max(max_exact, std::abs(s));
  std::vector<std::uint8_t> large(graph.n_edges(), 0);
  for (std::size_t e = 0; e < graph.n_edges(); ++e)
    large[e] = max_exact > 0 && std::abs(r.exact.edge_scores[e]) >= opt.large_effect_fraction * max_exact;
  r.n_large = std::size_t(std::count(large.begin(), large.end(), 1));
  for (const Attribution* a : {&r.eap, &r.eap_ig}) {
    MethodComparison c;
    c.method = a->method;
    c.spearman_vs_exact = spearman(a->edge_scores, r.exact.edge_scores);
    if (r.n_large > 0 && r.n_large < graph.n_edges()) c.roc = roc(graph, a->edge_scores, large);
    r.comparisons.push_back(c);
  }

  // Faithfulness of the top-k circuits by |exact|: every k for small graphs, MIB's fractions otherwise.
  log("evaluating circuits of the top edges");
  const double m_full = r.exact.clean_metric, m_empty = r.exact.corrupted_metric;
  require(m_full != m_empty, "the clean and corrupted runs give the same metric; nothing to explain");
  std::vector<std::size_t> ks;
  if (graph.n_edges() <= 256) {
    for (std::size_t k = 1; k <= graph.n_edges(); ++k) ks.push_back(k);
  } else {
    for (double f : mib_fractions) ks.push_back(std::max<std::size_t>(1, mib_edge_count(f, graph.n_edges())));
  }
  const FaithfulnessCurve top_k = faithfulness_curve_at(model, task, metric, r.exact.edge_scores, ks, false);
  r.curve_edges = ks;
  r.faithfulness_curve = top_k.points;
  std::size_t chosen = graph.n_edges();
  for (std::size_t i = 0; i < ks.size(); ++i)
    if (top_k.points[i].value >= opt.target_faithfulness) {
      chosen = ks[i];
      break;
    }
  r.circuit = top_n(graph, r.exact.edge_scores, chosen);
  prune_dead_ends(r.circuit);
  const auto source = ablation_source(model, task, Ablation::Resample);
  r.circuit_metric = evaluate_circuit(model, task, metric, r.circuit.in_graph, source).metric;
  r.circuit_faithfulness = faithfulness(r.circuit_metric, m_empty, m_full);
  return r;
}

}  // namespace circuitry
