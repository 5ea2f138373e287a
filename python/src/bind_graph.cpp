// Graphs, from scores to circuits (top_n, threshold, greedy, dead ends), circuit files, ground
// truths (a file or a shipped name) and ROC: what `circuitry prune` and `circuitry roc` do.
#include <algorithm>
#include <string>
#include <vector>

#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <circuitry/api/ground_truths.hpp>
#include <circuitry/circuits/evaluation.hpp>
#include <circuitry/circuits/pruning.hpp>
#include <circuitry/graph/circuit.hpp>
#include <circuitry/graph/graph.hpp>
#include <circuitry/io/circuit_json.hpp>

#include "bindings.hpp"
#include "embedded_ground_truth.hpp"
#include "numpy_arrays.hpp"

namespace circuitry::python {

namespace {

template <class List, class Name>
std::vector<std::string> names_of(const List& items, Name name) {
  std::vector<std::string> names;
  names.reserve(items.size());
  for (const auto& item : items) names.push_back(name(item));
  return names;
}

/// `circuitry prune`: the circuit of `mode` (top_n, threshold or greedy) with dead ends removed
/// unless asked not to. Returns one flag per edge and the edges before dead ends were removed.
std::pair<NumpyArray<std::uint8_t>, std::size_t> prune(const Graph& graph, const InputVector<double>& scores_in, const std::string& mode,
                                                       double value, bool remove_dead_ends) {
  const std::vector<double> scores = from_numpy(scores_in, graph.n_edges(), "scores");
  auto count = [&] {
    require(value >= 0 && value == double(std::size_t(value)), mode + " must be a non-negative whole number of edges");
    return std::size_t(value);
  };
  Circuit circuit = mode == "top_n"       ? top_n(graph, scores, count())
                    : mode == "threshold" ? threshold(graph, scores, value)
                    : mode == "greedy"    ? greedy(graph, scores, count())
                                          : throw Error("unknown pruning '" + mode + "' (choose top_n, threshold or greedy)");
  const std::size_t before = circuit.n_edges();
  if (remove_dead_ends) prune_dead_ends(circuit);
  return {to_numpy(std::move(circuit.in_graph)), before};
}

Circuit circuit_on(const Graph& graph, const InputVector<std::uint8_t>& in_graph) {
  Circuit circuit(graph);
  circuit.in_graph = from_numpy(in_graph, graph.n_edges(), "in_graph");
  for (std::uint8_t f : circuit.in_graph) require(f <= 1, "in_graph must hold 0 or 1 for each edge");
  return circuit;
}

/// A ground truth by file, or by the name of one that ships with circuitry, as `--ground-truth`.
std::vector<std::uint8_t> ground_truth(const Graph& graph, const std::string& value, const std::string& key) {
  return api::resolve_ground_truth(graph, value, key, embedded_ground_truth::lookup);
}

}  // namespace

void bind_graph(nb::module_& m) {
  nb::class_<Graph>(m, "Graph", "The computational graph: upstream nodes, downstream ports, edges (DESIGN.md section 2).")
      .def("__init__", [](Graph* g, std::size_t n_layers, std::size_t n_heads, bool has_mlp, bool parallel_attn_mlp) {
        new (g) Graph(GraphShape{n_layers, n_heads, has_mlp, parallel_attn_mlp});
      }, nb::arg("n_layers"), nb::arg("n_heads"), nb::arg("has_mlp") = true, nb::arg("parallel_attn_mlp") = false)
      .def_prop_ro("n_edges", &Graph::n_edges)
      .def_prop_ro("n_layers", [](const Graph& g) { return g.shape().n_layers; })
      .def_prop_ro("n_heads", [](const Graph& g) { return g.shape().n_heads; })
      .def_prop_ro("has_mlp", [](const Graph& g) { return g.shape().has_mlp; })
      .def_prop_ro("parallel_attn_mlp", [](const Graph& g) { return g.shape().parallel_attn_mlp; })
      .def_prop_ro("edges", [](const Graph& g) { return names_of(g.edges(), [](const Edge& e) { return e.name; }); },
                   "Edge names in graph order (the order of every score array).")
      .def_prop_ro("nodes", [](const Graph& g) { return names_of(g.upstream(), [](const UpstreamNode& n) { return n.name; }); },
                   "Upstream node names: input, then per layer its heads and its MLP.")
      .def_prop_ro("ports", [](const Graph& g) { return names_of(g.ports(), [](const DownstreamPort& p) { return p.name; }); },
                   "Downstream port names: per layer each head's <q>, <k>, <v>, its MLP; logits last.")
      .def("edge_index", [](const Graph& g, const std::string& name) { return g.find_edge(name); }, nb::arg("name"))
      .def("__len__", &Graph::n_edges);

  m.def("prune", &prune, nb::arg("graph"), nb::arg("scores"), nb::arg("mode"), nb::arg("value"), nb::arg("remove_dead_ends"));
  m.def("circuit_json", [](const Graph& graph, const InputVector<std::uint8_t>& in_graph, const InputVector<double>& scores,
                           std::size_t d_model) {
    return io::circuit_json_text(circuit_on(graph, in_graph), from_numpy(scores, graph.n_edges(), "scores"), d_model);
  }, nb::arg("graph"), nb::arg("in_graph"), nb::arg("scores"), nb::arg("d_model"), "The circuit file's text (EAP-IG's layout).");
  m.def("read_circuit", [](const Graph& graph, const std::string& path) {
    return to_numpy(io::read_circuit_json(path).on(graph).in_graph);
  }, nb::arg("graph"), nb::arg("path"), "The in_graph flags of a circuit file, checked against the graph.");
  m.def("ground_truth", [](const Graph& graph, const std::string& value, const std::string& key) {
    return to_numpy(ground_truth(graph, value, key));
  }, nb::arg("graph"), nb::arg("value"), nb::arg("key"));
  m.def("roc", [](const Graph& graph, const InputVector<double>& scores, const InputVector<std::uint8_t>& truth) {
    const RocCurve c = roc(graph, from_numpy(scores, graph.n_edges(), "scores"), from_numpy(truth, graph.n_edges(), "truth"));
    nb::dict d;
    d["fpr"] = c.fpr, d["tpr"] = c.tpr, d["auc_trapezoid"] = c.auc_trapezoid, d["auc_pessimistic"] = c.auc_pessimistic;
    return d;
  }, nb::arg("graph"), nb::arg("scores"), nb::arg("truth"));
}

}  // namespace circuitry::python
