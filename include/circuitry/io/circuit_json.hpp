#pragma once
// Circuit files in EAP-IG's Graph.to_json layout (hannamw/EAP-IG, src/eap/graph.py; DESIGN.md
// section 3), so circuits move between circuitry, EAP-IG and the MIB circuit track:
//   {"cfg": {"n_layers", "n_heads", "d_model", "parallel_attn_mlp"},
//    "nodes": {"input": {"in_graph": true}, "a0.h0": {...}, "m0": {...}, ..., "logits": {...}},
//    "edges": {"input->a0.h0<q>": {"score": x, "in_graph": bool}, ...}}
// Attention-only models (which EAP-IG cannot describe) add "attn_only": true to cfg and have
// no m{l} nodes. Also here: ground-truth edge sets (ACDC's canonical circuits in EAP-IG names,
// the format of tests/fixtures/ground-truth), read into per-edge flags for roc().
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "circuitry/core/error.hpp"
#include "circuitry/graph/circuit.hpp"
#include "circuitry/graph/graph.hpp"
#include "circuitry/io/scores_json.hpp"

namespace circuitry::io {

/// The circuit as EAP-IG's to_json writes it, as the text of the file. Node in_graph is
/// Circuit::node_mask(), except that `logits` is always in the graph, as EAP-IG's LogitNode
/// reports. d_model is not used by circuitry; EAP-IG needs it in cfg to rebuild its Graph. The
/// edges are written straight from the numbers (number_text.hpp), one per line: an ordered_json
/// object would look each new name up among the ones before it, which took 2.7 s for GPT-2
/// small's 32,491 edges (and an ACDC sweep writes a circuit per threshold).
inline std::string circuit_json_text(const Circuit& circuit, const std::vector<double>& scores, std::size_t d_model) {
  circuit.check();
  const Graph& graph = *circuit.graph;
  require(scores.size() == graph.n_edges(), "got " + std::to_string(scores.size()) + " scores for a graph of " +
                                                std::to_string(graph.n_edges()) + " edges");
  for (std::size_t e = 0; e < graph.n_edges(); ++e)
    require(std::isfinite(scores[e]), "score of edge '" + graph.edges()[e].name + "' is not finite; JSON cannot store it");
  nlohmann::ordered_json head;
  head["cfg"] = {{"n_layers", graph.shape().n_layers},
                 {"n_heads", graph.shape().n_heads},
                 {"d_model", d_model},
                 {"parallel_attn_mlp", graph.shape().parallel_attn_mlp}};
  if (!graph.shape().has_mlp) head["cfg"]["attn_only"] = true;
  const std::vector<std::uint8_t> mask = circuit.node_mask();
  nlohmann::ordered_json nodes = nlohmann::ordered_json::object();  // a few hundred: the lookups do not matter
  for (std::size_t n = 0; n < mask.size(); ++n)
    nodes[node_name(graph, static_cast<int>(n))] = {{"in_graph", mask[n] != 0 || n + 1 == mask.size()}};
  head["nodes"] = std::move(nodes);
  return json_text_with_member(head, "edges", graph.n_edges() * 64, [&](std::string& out) {
    out += '{';
    for (std::size_t e = 0; e < graph.n_edges(); ++e) {
      out += e == 0 ? "\n  " : ",\n  ";
      out += nlohmann::ordered_json(graph.edges()[e].name).dump();  // quoted, escaped
      out += ": {\"score\": ";
      append_json_number(out, scores[e]);
      out += circuit.in_graph[e] != 0 ? ", \"in_graph\": true}" : ", \"in_graph\": false}";
    }
    out += graph.n_edges() == 0 ? "}" : "\n }";
  });
}

/// The same document, parsed (for reading a circuit's fields in code; objects keyed by name).
inline nlohmann::json circuit_to_json(const Circuit& circuit, const std::vector<double>& scores, std::size_t d_model) {
  return nlohmann::json::parse(circuit_json_text(circuit, scores, d_model));
}

inline void write_circuit_json(const std::filesystem::path& path, const Circuit& circuit,
                               const std::vector<double>& scores, std::size_t d_model) {
  write_file_atomically(path, circuit_json_text(circuit, scores, d_model));
}

/// A circuit file's contents, independent of any Graph object.
struct CircuitFile {
  std::string source;  // the file it came from, for messages
  GraphShape shape;
  std::size_t d_model = 0;
  std::vector<std::uint8_t> in_graph;  // one flag per edge, Graph(shape).edges() order
  std::vector<double> scores;          // one per edge, same order

  /// The circuit on `graph`, which must have the file's shape.
  Circuit on(const Graph&&) const = delete;  // the circuit would point at a temporary
  Circuit on(const Graph& graph) const {
    require(same_shape(shape, graph.shape()), source + ": the circuit is for a model of " + describe(shape) +
                                                  ", but the model has " + describe(graph.shape()));
    Circuit circuit(graph);
    circuit.in_graph = in_graph;
    return circuit;
  }
};

/// Reads a to_json document; `source` names it in errors. Every edge of the cfg's model must be
/// listed (to_json always lists all), every node name must exist; node flags are checked for
/// type but otherwise ignored, since circuitry derives nodes from edges. Extra keys (node
/// scores, neurons) are ignored.
inline CircuitFile circuit_from_json(const nlohmann::json& j, const std::string& source) {
  const std::string where = source + ": ";
  require(j.is_object(), where + "expected a JSON object, got " + j.type_name());
  for (const char* key : {"cfg", "nodes", "edges"}) {
    require(j.contains(key), where + "missing key '" + key + "'");
    require(j[key].is_object(), where + "'" + key + "' must be an object, got " + j[key].type_name());
  }
  CircuitFile out;
  out.source = source;

  const nlohmann::json& cfg = j["cfg"];
  auto count = [&](const char* key, std::size_t min) {
    require(cfg.contains(key), where + "cfg: missing key '" + key + "'");
    const nlohmann::json& v = cfg[key];
    require(v.is_number_integer() && v.get<long long>() >= static_cast<long long>(min) &&
                v.get<long long>() <= static_cast<long long>(detail::max_graph_dim),
            where + "cfg: '" + key + "' must be an integer from " + std::to_string(min) + " to " +
                std::to_string(detail::max_graph_dim) + ", got " + v.dump());
    return static_cast<std::size_t>(v.get<long long>());
  };
  auto flag = [&](const nlohmann::json& object, const char* key, const std::string& at) {
    require(object.contains(key), where + at + "missing key '" + key + "'");
    require(object[key].is_boolean(), where + at + "'" + key + "' must be true or false, got " + object[key].dump());
    return object[key].get<bool>();
  };
  out.shape.n_layers = count("n_layers", 1);
  out.shape.n_heads = count("n_heads", 1);
  require(cfg.contains("d_model") && cfg["d_model"].is_number_unsigned(),
          where + "cfg: 'd_model' must be a non-negative integer");
  out.d_model = cfg["d_model"].get<std::size_t>();
  out.shape.parallel_attn_mlp = flag(cfg, "parallel_attn_mlp", "cfg: ");
  out.shape.has_mlp = !(cfg.contains("attn_only") && flag(cfg, "attn_only", "cfg: "));

  const nlohmann::json& edges = j["edges"];
  const Graph graph = detail::graph_for_listing(out.shape, edges.size(), where + "edges: ");
  for (const auto& item : j["nodes"].items()) {
    try {
      find_node(graph, item.key());
    } catch (const Error& error) {
      throw Error(where + "nodes: " + error.what());
    }
    require(item.value().is_object(), where + "nodes: '" + item.key() + "' must be an object {\"in_graph\": bool}");
    flag(item.value(), "in_graph", "nodes: " + item.key() + ": ");
  }

  out.in_graph.assign(graph.n_edges(), 0);
  out.scores.assign(graph.n_edges(), 0.0);
  std::vector<std::uint8_t> seen(graph.n_edges(), 0);
  for (const auto& item : edges.items()) {
    const std::size_t e = detail::edge_id_in(graph, item.key(), where + "edges: ");
    const std::string at = "edges: " + item.key() + ": ";
    require(item.value().is_object(), where + at + "must be an object {\"score\": number, \"in_graph\": bool}");
    require(item.value().contains("score") && item.value()["score"].is_number(),
            where + at + "'score' must be a number");
    out.scores[e] = item.value()["score"].get<double>();
    out.in_graph[e] = flag(item.value(), "in_graph", at) ? 1 : 0;
    seen[e] = 1;
  }
  detail::require_every_edge(graph, seen, where + "edges: ");
  return out;
}

inline CircuitFile read_circuit_json(const std::filesystem::path& path) {
  return circuit_from_json(read_json_file(path), path.string());
}

/// Per-edge flags of a ground-truth circuit file (ACDC's canonical circuits converted to EAP-IG
/// names; see the README beside them). `key` picks the edge list: a top-level list ("edges",
/// "edges_no_mlp") or a variant under "variants" ("auto_circuit", ...). The file's "model"
/// block, when present, must match the graph's shape, and every name must be an edge of it.
/// The same, from the parsed document (`source` names it in errors: a path, or the name of a
/// ground truth embedded in a program).
inline std::vector<std::uint8_t> ground_truth_from_json(const Graph& graph, const nlohmann::json& j, const std::string& source,
                                                        const std::string& key = "edges") {
  const std::string where = source + ": ";
  require(j.is_object(), where + "expected a JSON object, got " + j.type_name());

  if (j.contains("model") && j["model"].is_object()) {
    const nlohmann::json& model = j["model"];
    GraphShape file_shape = graph.shape();
    if (model.contains("n_layers") && model["n_layers"].is_number_unsigned())
      file_shape.n_layers = model["n_layers"].get<std::size_t>();
    if (model.contains("n_heads") && model["n_heads"].is_number_unsigned())
      file_shape.n_heads = model["n_heads"].get<std::size_t>();
    if (model.contains("attn_only") && model["attn_only"].is_boolean())
      file_shape.has_mlp = !model["attn_only"].get<bool>();
    require(same_shape(file_shape, graph.shape()), where + "the ground truth is for a model of " +
                                                       describe(file_shape) + ", but the graph has " +
                                                       describe(graph.shape()));
  }

  const nlohmann::json* list = nullptr;
  if (j.contains(key) && j[key].is_array()) {
    list = &j[key];
  } else if (j.contains("variants") && j["variants"].is_object() && j["variants"].contains(key)) {
    const nlohmann::json& variant = j["variants"][key];
    require(variant.is_object() && variant.contains("edges") && variant["edges"].is_array(),
            where + "variants: '" + key + "' has no 'edges' list");
    list = &variant["edges"];
  }
  require(list != nullptr, where + "no edge list '" + key + "' (neither a top-level list nor a variant)");

  std::vector<std::uint8_t> truth(graph.n_edges(), 0);
  std::vector<std::string> unknown;  // every name that is not an edge of the graph, reported together
  for (const nlohmann::json& name : *list) {
    require(name.is_string(), where + key + ": edge names must be strings, got " + name.dump());
    try {
      truth[detail::edge_id_in(graph, name.get<std::string>(), where + key + ": ")] = 1;
    } catch (const Error&) {
      unknown.push_back(name.get<std::string>());
    }
  }
  if (!unknown.empty()) {
    std::string first;
    for (std::size_t i = 0; i < std::min<std::size_t>(unknown.size(), 5); ++i) first += (i ? ", '" : "'") + unknown[i] + "'";
    throw Error(where + key + ": " + std::to_string(unknown.size()) + " of " + std::to_string(list->size()) +
                " edges are not in the model's graph (" + describe(graph.shape()) + "): " + first +
                (unknown.size() > 5 ? ", ..." : "") + "; is this the ground truth of another model?");
  }
  return truth;
}

inline std::vector<std::uint8_t> read_ground_truth(const Graph& graph, const std::filesystem::path& path,
                                                   const std::string& key = "edges") {
  return ground_truth_from_json(graph, read_json_file(path), path.string(), key);
}

}  // namespace circuitry::io
