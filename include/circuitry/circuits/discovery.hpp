#pragma once
// The circuit-discovery pipeline behind `circuitry discover` and the main job:
//   1. score every edge with eap, eap-ig and exact patching;
//   2. compare the methods: Spearman rank correlation, and each method's ROC against the
//      edges whose exact effect is large (|exact| >= 10% of the largest);
//   3. grow circuits from the top edges by |exact| and evaluate each (every edge outside it
//      patched): the faithfulness curve; keep the smallest circuit reaching the target
//      faithfulness, then remove dead ends;
//   4. write scores, the circuit (EAP-IG JSON, DOT, SVG) and the curves (SVG): all staged in
//      one io::OutputSet, so a failure anywhere leaves none of them behind.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "circuitry/circuits/evaluation.hpp"
#include "circuitry/circuits/faithfulness_curve.hpp"
#include "circuitry/circuits/pruning.hpp"
#include "circuitry/graph/circuit.hpp"
#include "circuitry/io/atomic_file.hpp"
#include "circuitry/io/circuit_json.hpp"
#include "circuitry/io/dot.hpp"
#include "circuitry/io/scores_json.hpp"
#include "circuitry/io/svg_plot.hpp"
#include "circuitry/patching.hpp"

namespace circuitry {

struct DiscoveryOptions {
  MetricKind metric = MetricKind::LogitDiff;
  std::size_t eap_ig_steps = 5;
  double target_faithfulness = 0.9;
  double large_effect_fraction = 0.1;  // "large" exact effect: |exact| >= this * max |exact|
  std::filesystem::path out_dir = "circuitry-out";
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
  std::vector<std::string> files;              // written into out_dir
};

/// Runs the pipeline and stages its files into `outputs` (opt.out_dir is created and checked
/// first, before any computing); the caller commits them, with any files of its own.
template <class M, class T = typename M::scalar>
DiscoveryReport discover(const M& model, const PatchingTask<T>& task, const DiscoveryOptions& opt, io::OutputSet& outputs) {
  io::create_output_folder(opt.out_dir);
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

  // Files.
  auto path = [&](const std::string& name) {
    r.files.push_back((opt.out_dir / name).string());
    return opt.out_dir / name;
  };
  for (const Attribution* a : {&r.eap, &r.eap_ig, &r.exact})
    outputs.stage(path("scores-" + a->method + ".json"),
                  io::scores_json_text(graph, a->edge_scores,
                                       io::ScoresMeta{a->method, metric_name(opt.metric), a->clean_metric, a->corrupted_metric}));
  outputs.stage(path("circuit.json"), io::circuit_json_text(r.circuit, r.exact.edge_scores, model.config().n_embd));
  io::DotOptions dot;
  char title[96];
  std::snprintf(title, sizeof title, "circuit: %zu edges, faithfulness %.3f", r.circuit.n_edges(), r.circuit_faithfulness);
  dot.title = title;
  outputs.stage(path("circuit.dot"), io::to_dot(r.circuit, r.exact.edge_scores, dot));
  if (const auto svg = io::render_svg(outputs.staged(opt.out_dir / "circuit.dot"))) outputs.stage(path("circuit.svg"), *svg);

  io::LinePlot curve;
  curve.title = "Faithfulness of the top-k edges by |exact effect|";
  curve.x_label = "edges in the circuit";
  curve.y_label = "faithfulness";
  io::PlotSeries fs{"faithfulness", {}, {}, "#1f77b4"};
  for (std::size_t i = 0; i < r.curve_edges.size(); ++i) fs.x.push_back(double(r.curve_edges[i])), fs.y.push_back(r.faithfulness_curve[i].value);
  curve.series.push_back(fs);
  curve.series.push_back({"target", {fs.x.front(), fs.x.back()}, {opt.target_faithfulness, opt.target_faithfulness}, "#999999", true, false});
  curve.log_x = graph.n_edges() > 256;
  outputs.stage(path("faithfulness.svg"), io::render_line_plot(curve));

  if (r.n_large > 0 && r.n_large < graph.n_edges()) {
    io::LinePlot rocplot;
    rocplot.title = "ROC against edges with a large exact effect";
    rocplot.x_label = "false positive rate";
    rocplot.y_label = "true positive rate";
    rocplot.diagonal = true;
    const char* colours[] = {"#d62728", "#2ca02c"};
    for (std::size_t i = 0; i < r.comparisons.size(); ++i) {
      const auto& c = r.comparisons[i];
      char label[64];
      std::snprintf(label, sizeof label, "%s (AUC %.3f)", c.method.c_str(), c.roc.auc_trapezoid);
      rocplot.series.push_back({label, c.roc.fpr, c.roc.tpr,
                                colours[i % 2], false, false});
    }
    outputs.stage(path("roc.svg"), io::render_line_plot(rocplot));
  }
  return r;
}

/// The pipeline, its files written together into opt.out_dir.
template <class M, class T = typename M::scalar>
DiscoveryReport discover(const M& model, const PatchingTask<T>& task, const DiscoveryOptions& opt) {
  io::OutputSet outputs;
  DiscoveryReport r = discover(model, task, opt, outputs);
  outputs.commit();
  return r;
}

}  // namespace circuitry
