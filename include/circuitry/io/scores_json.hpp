#pragma once
// The scores file of DESIGN.md section 3:
//   {"method": "eap", "metric": "logit_diff", "clean_metric": x, "corrupted_metric": y,
//    "edges": {"a0.h1->a2.h3<q>": score, ...}}
// with every edge of the graph present. Extra top-level keys are kept (ScoresMeta::extra).
// The file carries no model shape, so the reader infers it from the edge names.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "circuitry/core/error.hpp"
#include "circuitry/graph/circuit.hpp"
#include "circuitry/graph/graph.hpp"
#include "circuitry/io/atomic_file.hpp"
#include "circuitry/io/json_parse.hpp"
#include "circuitry/io/number_text.hpp"

namespace circuitry::io {

/// The text of a JSON output file (indent 1: a 32k-edge file stays greppable).
inline std::string json_text(const nlohmann::ordered_json& j) { return j.dump(1) + "\n"; }

/// json_text(head) with one more member at the end, `key`, whose value write_value(out)
/// appends to the text as JSON (number_text.hpp): the way to write a large array or object of
/// numbers without a nlohmann node per number. The value is laid out by its writer; its nested
/// lines are indented by two spaces to match json_text. `reserve` is a guess of the value's
/// length, so that a value of many megabytes is not copied each time the text outgrows its
/// buffer.
template <class WriteValue>
std::string json_text_with_member(const nlohmann::ordered_json& head, std::string_view key, std::size_t reserve,
                                  WriteValue&& write_value) {
  require(head.is_object(), "json_text_with_member: the head must be a JSON object");
  std::string text = head.dump(1);  // "{\n \"a\": 1\n}", or "{}" when empty
  text.reserve(text.size() + key.size() + reserve + 16);
  text.pop_back();  // the closing brace, after a newline unless empty
  if (!head.empty()) text.pop_back();
  text += head.empty() ? "\n " : ",\n ";
  text += nlohmann::ordered_json(key).dump();  // the key, quoted and escaped
  text += ": ";
  std::forward<WriteValue>(write_value)(text);
  text += "\n}\n";
  return text;
}

namespace detail {

/// One side of an edge name: `input`, `a{l}.h{h}` (+ `<q|k|v>` on the port side), `m{l}`, `logits`.
struct EdgeNamePart {
  char kind = 0;  // 'i' input, 'a' head, 'm' MLP, 'l' logits
  std::size_t layer = 0, head = 0;
  char qkv = 0;  // 'q', 'k', 'v' for head ports
};

/// Largest layer or head count accepted from a file; keeps edge counts far from overflow.
inline constexpr std::size_t max_graph_dim = 10000;

/// Reads a decimal index (below max_graph_dim) without sign or leading zeros, as Graph writes them.
inline bool parse_name_index(std::string_view& s, std::size_t& value) {
  std::size_t n = 0;
  while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n;
  if (n == 0 || n > 4 || (n > 1 && s[0] == '0')) return false;
  value = 0;
  for (std::size_t i = 0; i < n; ++i) value = value * 10 + static_cast<std::size_t>(s[i] - '0');
  s.remove_prefix(n);
  return true;
}

inline std::optional<EdgeNamePart> parse_name_part(std::string_view s, bool port) {
  EdgeNamePart parts;
  if (s == (port ? "logits" : "input")) {
    parts.kind = port ? 'l' : 'i';
    return parts;
  }
  if (s.empty() || (s[0] != 'a' && s[0] != 'm')) return std::nullopt;
  parts.kind = s[0];
  s.remove_prefix(1);
  if (!parse_name_index(s, parts.layer)) return std::nullopt;
  if (parts.kind == 'a') {
    if (s.substr(0, 2) != ".h") return std::nullopt;
    s.remove_prefix(2);
    if (!parse_name_index(s, parts.head)) return std::nullopt;
    if (port) {
      if (s.size() != 3 || s[0] != '<' || s[2] != '>' || (s[1] != 'q' && s[1] != 'k' && s[1] != 'v'))
        return std::nullopt;
      parts.qkv = s[1];
      s.remove_prefix(3);
    }
  }
  return s.empty() ? std::optional<EdgeNamePart>(parts) : std::nullopt;
}

/// Splits "u->p"; nullopt when the name is not an edge name of the EAP-IG form.
inline std::optional<std::pair<EdgeNamePart, EdgeNamePart>> parse_edge_name(std::string_view name) {
  const std::size_t arrow = name.find("->");
  if (arrow == std::string_view::npos) return std::nullopt;
  auto u = parse_name_part(name.substr(0, arrow), false);
  auto p = parse_name_part(name.substr(arrow + 2), true);
  if (!u || !p) return std::nullopt;
  return std::pair{*u, *p};
}

/// Edge count of the graph of `shape`, without building it: each port sees every upstream node
/// written before it (input, earlier layers, and for a sequential MLP its own layer's heads).
inline std::size_t expected_edge_count(const GraphShape& shape) {
  std::size_t count = first_node_of_layer(shape.n_layers, shape.n_heads, shape.has_mlp);  // into logits: one from every node
  for (std::size_t l = 0; l < shape.n_layers; ++l) {
    const std::size_t before = first_node_of_layer(l, shape.n_heads, shape.has_mlp);
    count += 3 * shape.n_heads * before;
    if (shape.has_mlp) count += before + (shape.parallel_attn_mlp ? 0 : shape.n_heads);
  }
  return count;
}

/// The shape the edge names point to (largest indices), before any count check.
inline GraphShape shape_from_names(const std::vector<std::string>& edge_names) {
  std::size_t max_layer = 0, max_head = 0;
  bool any_head = false, any_mlp = false, head_feeds_own_mlp = false;
  for (const std::string& name : edge_names) {
    const auto parts = parse_edge_name(name);
    require(parts.has_value(), "'" + name +
                                   "' is not an edge name (expected upstream->input with upstream input, "
                                   "a{l}.h{h} or m{l} and input a{l}.h{h}<q|k|v>, m{l} or logits)");
    for (const EdgeNamePart& side : {parts->first, parts->second}) {
      if (side.kind == 'a' || side.kind == 'm') max_layer = std::max(max_layer, side.layer);
      if (side.kind == 'a') {
        any_head = true;
        max_head = std::max(max_head, side.head);
      }
      any_mlp = any_mlp || side.kind == 'm';
    }
    head_feeds_own_mlp = head_feeds_own_mlp || (parts->first.kind == 'a' && parts->second.kind == 'm' &&
                                                parts->first.layer == parts->second.layer);
  }
  require(any_head, "cannot infer the model shape: no attention head appears in the edge names");
  GraphShape shape;
  shape.n_layers = max_layer + 1;
  shape.n_heads = max_head + 1;
  shape.has_mlp = any_mlp;
  shape.parallel_attn_mlp = any_mlp && !head_feeds_own_mlp;
  return shape;
}

/// Builds Graph(shape) for a file that lists `n_listed` edges of it. A shape with far more
/// edges than the file means a stray index or a wrong cfg, and is refused before it is built.
inline Graph graph_for_listing(const GraphShape& shape, std::size_t n_listed, const std::string& where) {
  const std::size_t expected = expected_edge_count(shape);
  require(expected <= 2 * n_listed, where + "a model of " + describe(shape) + " has " + std::to_string(expected) +
                                        " edges but the file lists only " + std::to_string(n_listed) +
                                        "; check the layer and head indices");
  return Graph(shape);
}

/// Graph::find_edge with the file named in the error.
inline std::size_t edge_id_in(const Graph& graph, const std::string& name, const std::string& where) {
  try {
    return static_cast<std::size_t>(graph.find_edge(name));
  } catch (const Error& error) {
    throw Error(where + error.what());
  }
}

/// Error naming the first edge of the graph that the file did not list.
inline void require_every_edge(const Graph& graph, const std::vector<std::uint8_t>& seen, const std::string& where) {
  for (std::size_t e = 0; e < seen.size(); ++e)
    require(seen[e] != 0, where + "missing edge '" + graph.edges()[e].name + "' (a model of " +
                              describe(graph.shape()) + " has " + std::to_string(graph.n_edges()) +
                              " edges and the file must list each)");
}

}  // namespace detail

/// The graph shape that a complete list of edge names describes: n_layers and n_heads from
/// the largest layer and head index seen, has_mlp when an `m{l}` appears, parallel_attn_mlp
/// when MLPs are present but no head feeds its own layer's MLP. Validated by the edge count
/// of that shape (computed, not built, so a stray huge index cannot allocate a huge graph);
/// the caller still looks every name up (Graph::find_edge) to catch duplicates and typos.
inline GraphShape infer_graph_shape(const std::vector<std::string>& edge_names) {
  require(!edge_names.empty(), "cannot infer the model shape from an empty edge list");
  const GraphShape shape = detail::shape_from_names(edge_names);
  const std::size_t expected = detail::expected_edge_count(shape);
  require(expected == edge_names.size(), "the edge names suggest a model of " + describe(shape) + ", which has " +
                                             std::to_string(expected) + " edges, but " +
                                             std::to_string(edge_names.size()) + " were given");
  return shape;
}

/// Everything in a scores file besides the scores.
struct ScoresMeta {
  std::string method;  // eap, eap-ig, clean-corrupted, exact
  std::string metric;  // logit_diff, prob_diff, kl, loss
  double clean_metric = 0;
  double corrupted_metric = 0;
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // other top-level keys
};

struct Scores {
  GraphShape shape;
  ScoresMeta meta;
  std::vector<double> values;  // one per edge, Graph(shape).edges() order
};

namespace detail {

/// The scores file's keys besides "edges", checked: the metrics must be finite (JSON has no
/// NaN; nlohmann would write null, a silently wrong file) and no extra key may clash.
inline nlohmann::ordered_json scores_head(const Graph& graph, const std::vector<double>& scores, const ScoresMeta& meta) {
  require(scores.size() == graph.n_edges(), "got " + std::to_string(scores.size()) + " scores for a graph of " +
                                                std::to_string(graph.n_edges()) + " edges");
  nlohmann::ordered_json j;
  j["method"] = meta.method;
  j["metric"] = meta.metric;
  for (const auto& [key, value] : {std::pair{"clean_metric", meta.clean_metric}, std::pair{"corrupted_metric", meta.corrupted_metric}}) {
    require(std::isfinite(value), std::string(key) + " is not finite (" + std::to_string(value) +
                                      "): the model's numbers overflow or are NaN; check the checkpoint's weights");
    j[key] = value;
  }
  for (const auto& [key, value] : meta.extra.items()) {
    require(!j.contains(key) && key != "edges", "extra key '" + key + "' clashes with a key of the scores format");
    j[key] = value;
  }
  return j;
}

/// Error naming edge e unless its score is finite (an `if`: no message is built for good scores).
inline void require_finite_score(const Graph& graph, const std::vector<double>& scores, std::size_t e) {
  if (!std::isfinite(scores[e])) throw Error("score of edge '" + graph.edges()[e].name + "' is not finite; JSON cannot store it");
}

}  // namespace detail

/// The scores file as a JSON tree; every score must be finite, else Error names the edge.
/// Writing goes through scores_json_text, which skips the tree.
inline nlohmann::ordered_json scores_to_json(const Graph& graph, const std::vector<double>& scores,
                                             const ScoresMeta& meta) {
  nlohmann::ordered_json j = detail::scores_head(graph, scores, meta);
  nlohmann::ordered_json edges = nlohmann::ordered_json::object();
  for (std::size_t e = 0; e < scores.size(); ++e) {
    detail::require_finite_score(graph, scores, e);
    edges[graph.edges()[e].name] = scores[e];
  }
  j["edges"] = std::move(edges);
  return j;
}

/// The text of the scores file, json_text's layout, the same document as scores_to_json. The
/// edges are written straight from the numbers (number_text.hpp), one per line: building them
/// as an ordered_json object would look each new name up among the ones before it, a scan
/// that makes a 32k-edge file quadratic.
inline std::string scores_json_text(const Graph& graph, const std::vector<double>& scores, const ScoresMeta& meta) {
  const nlohmann::ordered_json head = detail::scores_head(graph, scores, meta);
  return json_text_with_member(head, "edges", scores.size() * 48, [&](std::string& out) {
    out += '{';
    for (std::size_t e = 0; e < scores.size(); ++e) {
      detail::require_finite_score(graph, scores, e);
      out += e == 0 ? "\n  " : ",\n  ";
      out += nlohmann::ordered_json(graph.edges()[e].name).dump();  // quoted, escaped
      out += ": ";
      append_json_number(out, scores[e]);
    }
    out += scores.empty() ? "}" : "\n }";
  });
}

inline void write_scores_json(const std::filesystem::path& path, const Graph& graph, const std::vector<double>& scores,
                              const ScoresMeta& meta) {
  write_file_atomically(path, scores_json_text(graph, scores, meta));
}

/// Reads a scores document; `source` names it in errors (the file name). Every edge of the
/// inferred shape must be present exactly once with a number.
inline Scores scores_from_json(const nlohmann::json& j, const std::string& source) {
  const std::string where = source + ": ";
  require(j.is_object(), where + "expected a JSON object, got " + j.type_name());
  auto string_key = [&](const char* key) {
    require(j.contains(key), where + "missing key '" + key + "'");
    require(j[key].is_string(), where + "'" + key + "' must be a string, got " + j[key].type_name());
    return j[key].get<std::string>();
  };
  auto number_key = [&](const char* key) {
    require(j.contains(key), where + "missing key '" + key + "'");
    require(j[key].is_number(), where + "'" + key + "' must be a number, got " + j[key].type_name());
    return j[key].get<double>();
  };
  Scores out;
  out.meta.method = string_key("method");
  out.meta.metric = string_key("metric");
  out.meta.clean_metric = number_key("clean_metric");
  out.meta.corrupted_metric = number_key("corrupted_metric");
  require(j.contains("edges"), where + "missing key 'edges'");
  const nlohmann::json& edges = j["edges"];
  require(edges.is_object(), where + "'edges' must be an object {edge name: score}, got " + edges.type_name());
  for (const auto& [key, value] : j.items())
    if (key != "method" && key != "metric" && key != "clean_metric" && key != "corrupted_metric" && key != "edges")
      out.meta.extra[key] = value;

  std::vector<std::string> names;
  names.reserve(edges.size());
  for (const auto& item : edges.items()) {
    require(
        detail::parse_edge_name(item.key()).has_value(),
        where + "edges: unknown edge '" + item.key() + "' (names look like input->a0.h1<q>, a0.h1->m2, m1->logits)");
    names.push_back(item.key());
  }
  require(!names.empty(), where + "'edges' is empty");
  try {
    out.shape = detail::shape_from_names(names);
  } catch (const Error& error) {
    throw Error(where + "edges: " + error.what());
  }
  const Graph graph = detail::graph_for_listing(out.shape, names.size(), where + "edges: ");
  out.values.assign(graph.n_edges(), 0.0);
  std::vector<std::uint8_t> seen(graph.n_edges(), 0);
  for (const auto& item : edges.items()) {
    const std::size_t e = detail::edge_id_in(graph, item.key(), where + "edges: ");
    require(item.value().is_number(),
            where + "edges: score of '" + item.key() + "' must be a number, got " + item.value().type_name());
    out.values[e] = item.value().get<double>();
    seen[e] = 1;
  }
  detail::require_every_edge(graph, seen, where + "edges: ");
  return out;
}

inline Scores read_scores_json(const std::filesystem::path& path) {
  return scores_from_json(read_json_file(path), path.string());
}

/// Reads scores for a known graph: Error when the file is for another model shape.
inline Scores read_scores_json(const std::filesystem::path& path, const Graph& graph) {
  Scores scores = read_scores_json(path);
  require(same_shape(scores.shape, graph.shape()), path.string() + ": the scores are for a model of " +
                                                       describe(scores.shape) + ", but the model has " +
                                                       describe(graph.shape()));
  return scores;
}

}  // namespace circuitry::io
