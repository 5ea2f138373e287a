#pragma once
// The files of `circuitry discover` and the main job (DESIGN.md section 4): each method's scores,
// the chosen circuit (EAP-IG JSON, DOT, and SVG when Graphviz is installed) and the curves (SVG),
// staged in one io::OutputSet so that they appear together or not at all.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <circuitry/circuitry.hpp>

#include "graphviz.hpp"

namespace circuitry::cli {

/// The pipeline's options and where its files go.
struct DiscoveryJob : DiscoveryOptions {
  std::filesystem::path out_dir = "circuitry-out";
};

/// Stages the report's files into `outputs` under job.out_dir; returns their paths.
inline std::vector<std::string> stage_discovery_files(const DiscoveryReport& r, const DiscoveryJob& job, std::size_t d_model,
                                                      io::OutputSet& outputs) {
  const Graph& graph = *r.graph;
  std::vector<std::string> files;
  auto path = [&](const std::string& name) {
    files.push_back((job.out_dir / name).string());
    return job.out_dir / name;
  };
  for (const Attribution* a : {&r.eap, &r.eap_ig, &r.exact})
    outputs.stage(path("scores-" + a->method + ".json"),
                  io::scores_json_text(graph, a->edge_scores,
                                       io::ScoresMeta{a->method, metric_name(job.metric), a->clean_metric, a->corrupted_metric}));
  outputs.stage(path("circuit.json"), io::circuit_json_text(r.circuit, r.exact.edge_scores, d_model));
  io::DotOptions dot;
  char title[96];
  std::snprintf(title, sizeof title, "circuit: %zu edges, faithfulness %.3f", r.circuit.n_edges(), r.circuit_faithfulness);
  dot.title = title;
  outputs.stage(path("circuit.dot"), io::to_dot(r.circuit, r.exact.edge_scores, dot));
  if (const auto svg = render_svg(outputs.staged(job.out_dir / "circuit.dot"))) outputs.stage(path("circuit.svg"), *svg);

  io::LinePlot curve;
  curve.title = "Faithfulness of the top-k edges by |exact effect|";
  curve.x_label = "edges in the circuit";
  curve.y_label = "faithfulness";
  io::PlotSeries fs{"faithfulness", {}, {}, "#1f77b4"};
  for (std::size_t i = 0; i < r.curve_edges.size(); ++i) fs.x.push_back(double(r.curve_edges[i])), fs.y.push_back(r.faithfulness_curve[i].value);
  curve.series.push_back(fs);
  curve.series.push_back({"target", {fs.x.front(), fs.x.back()}, {job.target_faithfulness, job.target_faithfulness}, "#999999", true, false});
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
      rocplot.series.push_back({label, c.roc.fpr, c.roc.tpr, colours[i % 2], false, false});
    }
    outputs.stage(path("roc.svg"), io::render_line_plot(rocplot));
  }
  return files;
}

}  // namespace circuitry::cli
