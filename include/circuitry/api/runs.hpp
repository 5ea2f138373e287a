#pragma once
// The runs the command line and the Python package do the same way, beyond one library call.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "circuitry/api/results.hpp"
#include "circuitry/circuits/evaluation.hpp"
#include "circuitry/patching.hpp"

namespace circuitry::api {

/// `evaluate --circuit`: M(full), M(empty) and M(circuit), the edges outside the circuit reading
/// the corrupted run (resample), zero, or their mean over the task's corrupted sequences at each
/// position (mean). The empty and the full circuit are the reference runs themselves, so their
/// faithfulness is exactly 0 and 1.
template <class M, class T = typename M::scalar>
CircuitEvaluation evaluate_circuit_against_references(const M& model, const PatchingTask<T>& task, MetricKind metric_kind,
                                                      Ablation ablation, const std::vector<std::uint8_t>& in_graph) {
  const Graph graph = model.graph();
  require(in_graph.size() == graph.n_edges(), "the circuit has " + std::to_string(in_graph.size()) + " flags for a graph of " +
                                                  std::to_string(graph.n_edges()) + " edges");
  const BuiltinMetric metric{metric_kind};
  const auto source = ablation_source(model, task, ablation, &task.corrupted);
  CircuitEvaluation r;
  r.metric = metric_name(metric_kind);
  r.ablation = ablation_name(ablation);
  r.clean_metric = metric_value(metric, task.clean_logits, task.data);
  r.corrupted_metric = evaluate_circuit(model, task, metric, std::vector<std::uint8_t>(graph.n_edges(), 0), source).metric;
  r.n_edges_in_graph = static_cast<std::size_t>(std::count(in_graph.begin(), in_graph.end(), std::uint8_t{1}));
  r.circuit_metric = r.n_edges_in_graph == 0                ? r.corrupted_metric
                     : r.n_edges_in_graph == graph.n_edges() ? r.clean_metric
                                                              : evaluate_circuit(model, task, metric, in_graph, source).metric;
  return r;
}

}  // namespace circuitry::api
