#pragma once
// The comparison the EAP paper makes (Syed et al. 2023, figure 2; Conmy et al. 2023, section
// 4): every method scores every edge of one model on one task, and each ranking is scored by
// its ROC against a ground-truth circuit. Attribution methods (eap, eap-ig, clean-corrupted)
// and exact patching rank by |score|; ACDC ranks by its sweep score (the largest threshold an
// edge survives) and also has its own ROC, one (FPR, TPR) point per threshold's circuit, whose
// Pareto frontier gives ACDC's pessimistic area (ACDC's notebooks/roc_plot_generator.py).
// Learned masks rank by the mask's location alpha = exp(log_alpha) (circuits/learned_mask.hpp).
#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "circuitry/circuits/acdc.hpp"
#include "circuitry/circuits/evaluation.hpp"
#include "circuitry/circuits/learned_mask.hpp"
#include "circuitry/patching/attribution_by_name.hpp"

namespace circuitry {

/// The attribution methods by name, then ACDC and learned masks.
inline const std::vector<std::string>& comparison_method_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n = attribution_method_names();
    n.push_back("acdc");
    n.push_back("learn-mask");
    return n;
  }();
  return names;
}

/// Refuses an unknown or repeated method name, naming the choices.
inline void check_comparison_methods(const std::vector<std::string>& methods) {
  require(!methods.empty(), "no methods to compare");
  const auto& known = comparison_method_names();
  std::string choices;
  for (const auto& m : known) choices += (choices.empty() ? "" : ", ") + m;
  for (std::size_t i = 0; i < methods.size(); ++i) {
    require(std::find(known.begin(), known.end(), methods[i]) != known.end(),
            "unknown method '" + methods[i] + "' (choose from " + choices + ")");
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
  /// learn-mask's settings; with neither a target nor an L0 weight, the target is a twentieth of
  /// the edges (at least one). Its metric is acdc_metric (a distance: kl by default).
  LearnMaskOptions learn_mask;
  std::function<void(const std::string&)> log;  // one line per method started
  const Distribution* distribution = nullptr;   // the methods over processes (method i on rank i % size)
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

  // Method i runs on rank i % size (options.distribution); every rank then reads every method's
  // scores, time and circuits, so all hold one process's results (the times aside).
  const Distribution* split = options.distribution && options.distribution->size() > 1 ? options.distribution : nullptr;
  std::vector<MethodRoc> results(methods.size());
  std::vector<std::string> shared(methods.size());
  for (std::size_t i = 0; i < methods.size(); ++i) {
    if (split && !split->owns(i)) continue;
    const std::string& name = methods[i];
    if (options.log) options.log(name);
    MethodRoc& r = results[i];
    const auto start = std::chrono::steady_clock::now();
    if (name == "acdc") {
      AcdcOptions acdc = options.acdc;
      acdc.distribution = nullptr;  // the sweep is one item of the comparison
      r.acdc = Acdc<M, T>(model, task, options.acdc_metric, acdc).sweep(thresholds);
      r.edge_scores = r.acdc->edge_scores;
    } else if (name == "learn-mask") {
      LearnMaskOptions mask = options.learn_mask;
      mask.metric = options.acdc_metric, mask.ablation = options.acdc.ablation, mask.mean_reference = options.acdc.mean_reference;
      mask.distribution = nullptr;  // its restarts are one item of the comparison
      if (mask.target_edges == 0 && mask.l0 == 0) mask.target_edges = std::max<std::size_t>(1, (graph.n_edges() + 19) / 20);
      r.edge_scores = learned_mask_scores(learn_mask(model, task, mask));
    } else {
      AttributionByName request;
      request.method = name;
      request.steps = options.eap_ig_steps;
      request.memory_budget = options.memory_budget;
      r.edge_scores = attribute_by_name(model, task, metric, request).edge_scores;
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!split) continue;
    const std::size_t n_circuits = r.acdc ? r.acdc->circuits.size() : 0;
    append_bytes(shared[i], &r.seconds, 1), append_bytes(shared[i], &n_circuits, 1);
    append_bytes(shared[i], r.edge_scores.data(), graph.n_edges());
    for (std::size_t k = 0; k < n_circuits; ++k) append_circuit(shared[i], r.acdc->circuits[k]);
  }
  if (split) {
    split->share(shared);
    for (std::size_t i = 0; i < methods.size(); ++i) {
      MethodRoc& r = results[i];
      std::size_t at = 0, n_circuits = 0;
      read_bytes(shared[i], at, &r.seconds, 1), read_bytes(shared[i], at, &n_circuits, 1);
      r.edge_scores.resize(graph.n_edges());
      read_bytes(shared[i], at, r.edge_scores.data(), graph.n_edges());
      if (methods[i] != "acdc") continue;
      r.acdc = AcdcSweep{{}, r.edge_scores};
      for (std::size_t k = 0; k < n_circuits; ++k) r.acdc->circuits.push_back(read_circuit(shared[i], at));
    }
  }
  for (std::size_t i = 0; i < methods.size(); ++i) {
    MethodRoc& r = results[i];
    r.method = methods[i];
    r.edges_scored = r.edge_scores.size();
    r.roc = roc(graph, r.edge_scores, truth);
    r.auc = r.roc.auc_trapezoid;
    if (r.acdc) {  // ACDC's own points, one per circuit
      std::vector<std::vector<std::uint8_t>> circuits;
      for (const auto& c : r.acdc->circuits) circuits.push_back(c.in_graph);
      const RocCurve own = roc_of_circuits(circuits, truth);
      r.fpr = own.fpr, r.tpr = own.tpr, r.auc_pessimistic = own.auc_pessimistic;
    } else {
      r.auc_pessimistic = r.roc.auc_pessimistic, r.fpr = r.roc.fpr, r.tpr = r.roc.tpr;
    }
  }
  return results;
}

}  // namespace circuitry
