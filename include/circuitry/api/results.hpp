#pragma once
// Each command's result as JSON (the files of DESIGN.md section 4, and the dicts of the Python
// package, which are the same objects) and the plots drawn from it. A result holding a NaN or an
// infinity is refused, naming the key: JSON has neither, and a silent null would be wrong.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuitry/circuits/acdc.hpp"
#include "circuitry/circuits/faithfulness_curve.hpp"
#include "circuitry/circuits/learned_mask.hpp"
#include "circuitry/circuits/method_comparison.hpp"
#include "circuitry/circuits/evaluation.hpp"
#include "circuitry/io/scores_json.hpp"
#include "circuitry/io/svg_plot.hpp"
#include "circuitry/patching/path_patching.hpp"

namespace circuitry::api {

using Json = nlohmann::ordered_json;

/// Throws when `value`, the result's number at `where`, is a NaN or an infinity.
inline void require_finite(double value, const std::string& where) {
  if (!std::isfinite(value))  // not require(): its message would be built for every number
    throw Error("the result " + where + " is not finite (" + std::to_string(value) +
                "): the model's numbers overflow or are NaN; check the checkpoint's weights");
}

/// Throws when the result holds a NaN or an infinity anywhere, naming the key.
inline void require_finite(const Json& j, const std::string& where = "") {
  if (j.is_number_float()) {
    require_finite(j.get<double>(), where);
  } else if (j.is_object()) {
    for (const auto& [key, value] : j.items()) require_finite(value, where.empty() ? key : where + "." + key);
  } else if (j.is_array()) {
    for (std::size_t i = 0; i < j.size(); ++i) require_finite(j[i], where + "[" + std::to_string(i) + "]");
  }
}

/// The text of a result file, refused when it holds a non-finite number.
inline std::string result_text(const Json& j) {
  require_finite(j);
  return io::json_text(j);
}

/// `evaluate --circuit`: M(full), M(empty) (every edge patched under the ablation), M(circuit).
struct CircuitEvaluation {
  std::string metric, ablation;
  double clean_metric = 0, corrupted_metric = 0, circuit_metric = 0;
  std::size_t n_edges_in_graph = 0;

  Json to_json() const {
    Json j;
    j["metric"] = metric;
    j["ablation"] = ablation;
    j["clean_metric"] = clean_metric;
    j["corrupted_metric"] = corrupted_metric;
    j["circuit_metric"] = circuit_metric;
    // faithfulness = (M(circuit) - M(empty)) / (M(full) - M(empty)); undefined when the two agree
    j["faithfulness"] = clean_metric == corrupted_metric ? Json(nullptr) : Json(faithfulness(circuit_metric, corrupted_metric, clean_metric));
    j["n_edges_in_graph"] = n_edges_in_graph;
    return j;
  }
};

/// `evaluate --scores`: the MIB curve of the scores' top edges, CPR and CMD.
inline Json curve_json(const FaithfulnessCurve& curve, const std::string& metric) {
  Json j;
  j["metric"] = metric;
  j["clean_metric"] = curve.m_full;
  j["corrupted_metric"] = curve.m_empty;
  j["cpr"] = curve.cpr;
  j["cmd"] = curve.cmd;
  Json points = Json::array();
  for (std::size_t i = 0; i < curve.points.size(); ++i)
    points.push_back({{"fraction", curve.points[i].fraction}, {"n_edges_in_graph", curve.edges_kept[i]}, {"faithfulness", curve.points[i].value}});
  j["curve"] = std::move(points);
  return j;
}

inline io::LinePlot curve_plot(const FaithfulnessCurve& curve) {
  io::LinePlot plot;
  char title[96];
  std::snprintf(title, sizeof title, "Faithfulness of the top edges (CPR %.3f, CMD %.3f)", curve.cpr, curve.cmd);
  plot.title = title;
  plot.x_label = "fraction of edges";
  plot.y_label = "faithfulness";
  plot.log_x = true;
  io::PlotSeries series{"faithfulness", {}, {}, "#1f77b4"};
  for (const CurvePoint& p : curve.points) series.x.push_back(p.fraction), series.y.push_back(p.value);
  plot.series.push_back(series);
  return plot;
}

inline Json path_patch_json(const PathPatchResult& r, const std::string& metric) {
  return {{"metric", metric}, {"effect", r.effect}, {"clean_metric", r.clean_metric}, {"patched_metric", r.patched_metric}};
}

inline Json path_set_json(const PathSetResult& r, const std::string& delta) {
  return {{"delta", delta}, {"aue", r.aue}, {"ate", r.ate}, {"proportion_explained", r.proportion_explained}};
}

/// `acdc`: the sweep's circuits (`files[i]`: where circuit i is written, "" for none) and every
/// edge's sweep score (the largest threshold it survives).
inline Json acdc_json(const Graph& graph, const AcdcSweep& sweep, const std::vector<double>& thresholds, const std::string& metric,
                      const std::string& ablation, double clean_metric, double seconds, const std::vector<std::string>& files) {
  Json j;
  j["thresholds"] = thresholds;
  j["metric"] = metric;
  j["ablation"] = ablation;
  j["clean_metric"] = clean_metric;
  j["seconds"] = seconds;
  Json circuits = Json::array();
  for (std::size_t i = 0; i < sweep.circuits.size(); ++i) {
    const AcdcCircuit& c = sweep.circuits[i];
    Json cj = {{"threshold", c.threshold}, {"n_edges", c.n_edges}, {"distance", c.distance}, {"metric", c.metric}, {"runs", c.runs}};
    if (i < files.size() && !files[i].empty()) cj["file"] = files[i];
    circuits.push_back(std::move(cj));
  }
  j["circuits"] = std::move(circuits);
  Json edges = Json::object();
  for (std::size_t e = 0; e < graph.n_edges(); ++e) edges[graph.edges()[e].name] = sweep.edge_scores[e];
  j["edges"] = std::move(edges);
  return j;
}

/// `learn-mask`'s log: the run's settings and its last step (the circuit itself is a circuit file).
inline Json learn_mask_json(const LearnedMask& r, const LearnMaskOptions& o, std::size_t n_edges) {
  Json j;
  j["steps"] = r.steps;
  j["loss"] = r.loss;
  j["faithfulness_loss"] = r.faithfulness_loss;
  j["expected_edges"] = r.expected_edges;
  j["n_edges_in_graph"] = n_edges;
  j["n_edges_in_circuit"] = std::count(r.in_graph.begin(), r.in_graph.end(), std::uint8_t{1});
  j["circuit_faithfulness"] = r.circuit_faithfulness;
  j["seconds"] = r.seconds;
  j["seed"] = r.seed;
  Json restarts = Json::array();
  for (const LearnMaskRestart& x : r.restarts)
    restarts.push_back({{"seed", x.seed}, {"n_edges", x.n_edges}, {"circuit_faithfulness", x.circuit_faithfulness}, {"objective", x.objective}});
  j["restarts"] = std::move(restarts);
  j["lr"] = o.lr;
  if (o.target_edges > 0) j["target_edges"] = o.target_edges, j["multiplier_lr"] = o.multiplier_lr;
  else j["l0"] = o.l0;
  j["metric"] = metric_name(o.metric);
  j["ablation"] = ablation_name(o.ablation);
  return j;
}

/// One method of `compare`: its areas, time and ROC (ACDC: its per-threshold circuits too).
inline Json method_roc_json(const MethodRoc& r) {
  Json m = {{"auc", r.auc}, {"auc_pessimistic", r.auc_pessimistic}, {"seconds", r.seconds}, {"edges_scored", r.edges_scored},
            {"fpr", r.fpr}, {"tpr", r.tpr}};
  if (r.acdc) {
    Json points = Json::array();
    for (const auto& c : r.acdc->circuits) points.push_back({{"threshold", c.threshold}, {"n_edges", c.n_edges}});
    m["circuits"] = std::move(points);
  }
  return m;
}

inline Json comparison_json(const std::vector<MethodRoc>& results, const std::string& ground_truth, std::size_t n_edges,
                            const std::vector<std::uint8_t>& truth, const ComparisonOptions& options) {
  Json j;
  j["ground_truth"] = ground_truth;
  j["n_edges"] = n_edges;
  j["n_true"] = std::count(truth.begin(), truth.end(), 1);
  j["metric"] = metric_name(options.metric);
  j["acdc_metric"] = metric_name(options.acdc_metric);
  Json methods = Json::object();
  for (const MethodRoc& r : results) methods[r.method] = method_roc_json(r);
  j["methods"] = std::move(methods);
  return j;
}

/// Every method's ROC in one plot (ACDC's own points dashed).
inline io::LinePlot comparison_plot(const std::vector<MethodRoc>& results, const std::string& ground_truth) {
  io::LinePlot plot;
  plot.title = "ROC against the ground truth (" + ground_truth + ")";
  plot.x_label = "false positive rate";
  plot.y_label = "true positive rate";
  plot.diagonal = true;
  plot.x_min = 0, plot.x_max = 1, plot.y_min = 0, plot.y_max = 1;
  for (const MethodRoc& r : results) {
    char label[96];
    std::snprintf(label, sizeof label, "%s (AUC %.3f)", r.method.c_str(), r.auc);
    plot.series.push_back({label, r.fpr, r.tpr, "", false, r.method == "acdc"});
  }
  return plot;
}

/// `roc`: one method's scores against a ground truth.
inline Json roc_json(const RocCurve& curve, const std::string& method, std::size_t n_edges, const std::vector<std::uint8_t>& truth) {
  Json j;
  j["method"] = method;
  j["n_edges"] = n_edges;
  j["n_true"] = std::count(truth.begin(), truth.end(), 1);
  j["auc_trapezoid"] = curve.auc_trapezoid;
  j["auc_pessimistic"] = curve.auc_pessimistic;
  j["fpr"] = curve.fpr;
  j["tpr"] = curve.tpr;
  return j;
}

inline io::LinePlot roc_plot(const RocCurve& curve, const std::string& method) {
  io::LinePlot plot;
  char title[96];
  std::snprintf(title, sizeof title, "ROC of %s scores (AUC %.3f)", method.c_str(), curve.auc_trapezoid);
  plot.title = title;
  plot.x_label = "false positive rate";
  plot.y_label = "true positive rate";
  plot.diagonal = true;
  plot.series.push_back({method, curve.fpr, curve.tpr, "#d62728", false, false});
  return plot;
}

}  // namespace circuitry::api
