#pragma once
// The comparison the EAP paper makes (Syed et al. 2023, figure 2; Conmy et al. 2023, section
// 4): every method scores every edge of one model on one task, and each ranking is scored by
// its ROC against a ground-truth circuit. Attribution methods (eap, eap-ig, clean-corrupted)
// and exact patching rank by |score|; ACDC ranks by its sweep score (the largest threshold an
// edge survives) and also has its own ROC, one (FPR, TPR) point per threshold's circuit, whose
// Pareto frontier gives ACDC's pessimistic area (ACDC's notebooks/roc_plot_generator.py).
#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "circuitry/circuits/acdc.hpp"
#include "circuitry/circuits/evaluation.hpp"
#include "circuitry/patching/attribution_by_name.hpp"

namespace circuitry {

/// The attribution methods by name, then ACDC.
inline const std::vector<std::string>& comparison_method_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n = attribution_method_names();
    n.push_back("acdc");
    return n;
  }();
  return names;
}

/// Refuses an unknown or repeated method name, naming the choices.
inline void check_comparison_methods(const std::vector<std::string>& methods) {
  require(!methods.empty(), "no methods to compare");
  const auto& known = comparison_method_names();
  for (std::size_t i = 0; i < methods.size(); ++i) {
    require(std::find(known.begin(), known.end(), methods[i]) != known.end(),
            "unknown method '" + methods[i] + "' (choose from eap, eap-ig, clean-corrupted, exact, acdc)");
    require(std::find(methods.begin(), methods.begin() + static_cast<std::ptrdiff_t>(i), methods[i]) ==
                methods.begin() + static_cast<std::ptrdiff_t>(i),
            "method '" + methods[i] + "' is listed twice");
  }
}

struct ComparisonOptions {
  std::vector<std::string> methods;          // empty: every method (exact only on small graphs)
  MetricKind metric = MetricKind::LogitDiff;  // of the attribution methods and exact patching
  MetricKind acdc_metric = MetricKind::KL;    // ACDC's distance
  std::vector<double> thresholds;            // ACDC's sweep; empty: default_acdc_thresholds()
  std::size_t eap_ig_steps = 5;
  std::size_t memory_budget = 0;       // bytes, of the attribution methods and exact patching; 0: each one's default
  std::size_t exact_max_edges = 5000;  // the default list runs exact patching up to this many edges
  AcdcOptions acdc;
  std::function<void(const std::string&)> log;  // one line per method started
};

struct MethodRoc {
  std::string method;
  std::vector<double> edge_scores;
  RocCurve roc;                   // ranking by |score| (ACDC: by its sweep score)
  double auc = 0;                 // trapezoid area of roc
  double auc_pessimistic = 0;     // ACDC's step area: of roc, or for ACDC of its own points
  std::vector<double> fpr, tpr;   // ACDC: its per-threshold points (Pareto frontier, with (0,0), (1,1))
  double seconds = 0;
  std::size_t edges_scored = 0;
  std::optional<AcdcSweep> acdc;  // the circuits of the sweep
};

/// ACDC's own ROC: one point per circuit, the Pareto frontier of those points (a point with
/// no higher TPR at a lower FPR), from (0, 0) to (1, 1).
inline RocCurve roc_of_circuits(const std::vector<std::vector<std::uint8_t>>& circuits, const std::vector<std::uint8_t>& truth) {
  const auto positives = static_cast<double>(std::count(truth.begin(), truth.end(), std::uint8_t{1}));
  const double negatives = static_cast<double>(truth.size()) - positives;
  require(positives > 0 && negatives > 0, "ROC is undefined: the ground truth has no edges or every edge");
  std::vector<std::pair<double, double>> points = {{0.0, 0.0}, {1.0, 1.0}};
  for (const auto& c : circuits) {
    double tp = 0, fp = 0;
    for (std::size_t e = 0; e < c.size(); ++e)
      if (c[e]) (truth[e] ? tp : fp) += 1;
    points.emplace_back(fp / negatives, tp / positives);
  }
  std::sort(points.begin(), points.end());
  RocCurve curve;
  for (const auto& [f, t] : points) {
    if (!curve.tpr.empty() && t <= curve.tpr.back()) continue;  // dominated: not on the frontier
    if (!curve.fpr.empty() && f == curve.fpr.back()) curve.fpr.pop_back(), curve.tpr.pop_back();
    curve.fpr.push_back(f);
    curve.tpr.push_back(t);
  }
  if (curve.fpr.back() != 1.0) curve.fpr.push_back(1.0), curve.tpr.push_back(1.0);
  curve.auc_trapezoid = trapezoid_area(curve.fpr, curve.tpr);
  curve.auc_pessimistic = pessimistic_area(curve.fpr, curve.tpr);
  return curve;
}

/// Runs each method on the task and scores it against `truth` (one flag per edge).
template <class M, class T = typename M::scalar>
std::vector<MethodRoc> compare_methods(const M& model, const PatchingTask<T>& task, const std::vector<std::uint8_t>& truth,
                                              const ComparisonOptions& options = {}) {
  const Graph graph = model.graph();
  require(truth.size() == graph.n_edges(), "the ground truth has " + std::to_string(truth.size()) + " flags for a graph of " +
                                               std::to_string(graph.n_edges()) + " edges");
  std::vector<std::string> methods = options.methods;
  if (methods.empty()) {
    for (const auto& m : comparison_method_names())
      if (m != "exact" || graph.n_edges() <= options.exact_max_edges) methods.push_back(m);
  }
  check_comparison_methods(methods);
  const std::vector<double> thresholds = options.thresholds.empty() ? default_acdc_thresholds() : options.thresholds;
  check_acdc_thresholds(thresholds);
  const BuiltinMetric metric{options.metric};

  std::vector<MethodRoc> results;
  for (const std::string& name : methods) {
    if (options.log) options.log(name);
    MethodRoc r;
    r.method = name;
    const auto start = std::chrono::steady_clock::now();
    if (name == "acdc") {
      const Acdc<M, T> acdc_run(model, task, options.acdc_metric, options.acdc);
      AcdcSweep sweep = acdc_run.sweep(thresholds);
      r.edge_scores = sweep.edge_scores;
      std::vector<std::vector<std::uint8_t>> circuits;
      for (const auto& c : sweep.circuits) circuits.push_back(c.in_graph);
      const RocCurve own = roc_of_circuits(circuits, truth);
      r.fpr = own.fpr;
      r.tpr = own.tpr;
      r.auc_pessimistic = own.auc_pessimistic;
      r.acdc = std::move(sweep);
    } else {
      AttributionByName request;
      request.method = name;
      request.steps = options.eap_ig_steps;
      request.memory_budget = options.memory_budget;
      r.edge_scores = attribute_by_name(model, task, metric, request).edge_scores;
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    r.edges_scored = r.edge_scores.size();
    r.roc = roc(graph, r.edge_scores, truth);
    r.auc = r.roc.auc_trapezoid;
    if (name != "acdc") {
      r.auc_pessimistic = r.roc.auc_pessimistic;
      r.fpr = r.roc.fpr;
      r.tpr = r.roc.tpr;
    }
    results.push_back(std::move(r));
  }
  return results;
}

}  // namespace circuitry
