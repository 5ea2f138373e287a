#pragma once
// A circuit: a subset of the edges of a Graph (DESIGN.md section 2, "Evaluating a circuit").
//
// Edges are the unit; nodes follow from them. The node list is EAP-IG's (hannamw/EAP-IG,
// src/eap/graph.py): `input`, one node per head `a{l}.h{h}` (its q, k and v inputs are
// ports of that one node), `m{l}`, and the sink `logits`. Node index n < upstream().size()
// is the upstream node of the same index; n == upstream().size() is `logits`.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "circuitry/core/error.hpp"
#include "circuitry/graph/graph.hpp"

namespace circuitry {

/// "12 layers x 12 heads, with MLPs" (for error messages).
inline std::string describe(const GraphShape& shape) {
  return std::to_string(shape.n_layers) + " layers x " + std::to_string(shape.n_heads) + " heads, " +
         (shape.has_mlp ? (shape.parallel_attn_mlp ? "parallel attention/MLP" : "with MLPs") : "attention-only");
}

inline bool same_shape(const GraphShape& a, const GraphShape& b) {
  return a.n_layers == b.n_layers && a.n_heads == b.n_heads && a.has_mlp == b.has_mlp &&
         (!a.has_mlp || a.parallel_attn_mlp == b.parallel_attn_mlp);
}

/// Number of EAP-IG nodes: the upstream nodes plus `logits`.
inline std::size_t n_nodes(const Graph& graph) { return graph.upstream().size() + 1; }

/// The node a port belongs to: a{l}.h{h}<q> -> a{l}.h{h}, port m{l} -> m{l}, logits -> logits.
inline int port_node(const Graph& graph, int port) {
  const DownstreamPort& p = graph.ports()[static_cast<std::size_t>(port)];
  switch (p.kind) {
    case PortKind::Mlp: return graph.mlp_node(static_cast<std::size_t>(p.layer));
    case PortKind::Logits: return static_cast<int>(graph.upstream().size());
    default: return graph.head_node(static_cast<std::size_t>(p.layer), static_cast<std::size_t>(p.head));
  }
}

/// The name of node n (EAP-IG naming).
inline std::string node_name(const Graph& graph, int node) {
  return static_cast<std::size_t>(node) == graph.upstream().size()
             ? "logits"
             : graph.upstream()[static_cast<std::size_t>(node)].name;
}

/// Index of a node by name ("input", "a0.h1", "m2", "logits"); throws Error for any other name.
inline int find_node(const Graph& graph, std::string_view name) {
  return name == "logits" ? static_cast<int>(graph.upstream().size()) : graph.find_upstream(name);
}

/// The ports (downstream inputs) of node n: q, k, v of a head, the MLP's input, or logits.
inline std::vector<int> ports_of_node(const Graph& graph, int node) {
  if (static_cast<std::size_t>(node) == graph.upstream().size()) return {graph.logits_port()};
  const UpstreamNode& u = graph.upstream()[static_cast<std::size_t>(node)];
  const auto layer = static_cast<std::size_t>(u.layer);
  switch (u.kind) {
    case NodeKind::Head: {
      const auto head = static_cast<std::size_t>(u.head);
      return {graph.head_port(layer, head, PortKind::Q), graph.head_port(layer, head, PortKind::K),
              graph.head_port(layer, head, PortKind::V)};
    }
    case NodeKind::Mlp: return {graph.mlp_port(layer)};
    default: return {};  // input reads nothing from the residual stream
  }
}

struct Circuit {
  const Graph* graph = nullptr;
  std::vector<std::uint8_t> in_graph;  // one flag per edge, Graph::edges() order

  Circuit() = default;
  /// The empty circuit on `g` (every edge out).
  explicit Circuit(const Graph& g) : graph(&g), in_graph(g.n_edges(), 0) {}
  /// A circuit keeps a pointer to its graph: a temporary graph would leave it dangling.
  explicit Circuit(const Graph&&) = delete;

  /// Number of edges in the circuit.
  std::size_t n_edges() const {
    std::size_t n = 0;
    for (std::uint8_t flag : in_graph) n += flag != 0;
    return n;
  }

  /// Per node (n_nodes(graph) entries): 1 when an in-graph edge touches the node, either leaving
  /// it or entering one of its ports. After prune_dead_ends this equals EAP-IG's nodes_in_graph
  /// (a node is kept when it has incoming and outgoing edges; input needs none incoming), except
  /// for `logits`, which EAP-IG reports as always in the graph.
  std::vector<std::uint8_t> node_mask() const {
    check();
    std::vector<std::uint8_t> mask(n_nodes(*graph), 0);
    const auto& edges = graph->edges();
    for (std::size_t e = 0; e < edges.size(); ++e) {
      if (!in_graph[e]) continue;
      mask[static_cast<std::size_t>(edges[e].upstream)] = 1;
      mask[static_cast<std::size_t>(port_node(*graph, edges[e].port))] = 1;
    }
    return mask;
  }

  /// Whether node `name` ("input", "a0.h1", "m2", "logits") is touched by an in-graph edge.
  bool contains_node(std::string_view name) const {
    check();
    return node_mask()[static_cast<std::size_t>(find_node(*graph, name))] != 0;
  }

  /// Names of the nodes touched by in-graph edges, in EAP-IG order (input, a0.h0.., m0, .., logits).
  std::vector<std::string> node_names() const {
    const std::vector<std::uint8_t> mask = node_mask();
    std::vector<std::string> names;
    for (std::size_t n = 0; n < mask.size(); ++n)
      if (mask[n]) names.push_back(node_name(*graph, static_cast<int>(n)));
    return names;
  }

  /// Throws Error unless the circuit has a graph and one flag per edge.
  void check() const {
    require(graph != nullptr, "circuit has no graph");
    require(in_graph.size() == graph->n_edges(), "circuit has " + std::to_string(in_graph.size()) +
                                                     " edge flags but its graph has " +
                                                     std::to_string(graph->n_edges()) + " edges");
  }
};

/// Removes edges that cannot carry signal from input to logits, until none is left (EAP-IG
/// Graph.prune): an edge goes when its upstream node (other than `input`) has no in-graph edge
/// into any of its ports, or when its port's node (other than `logits`) has no in-graph edge
/// out. Returns the number of edges removed.
inline std::size_t prune_dead_ends(Circuit& circuit) {
  circuit.check();
  const Graph& g = *circuit.graph;
  const auto& edges = g.edges();
  const std::size_t n_node = n_nodes(g);
  const auto input = static_cast<std::size_t>(g.input_node());
  const std::size_t logits = n_node - 1;

  // in_count[n]: in-graph edges into n's ports; out_count[n]: in-graph edges out of n.
  std::vector<std::size_t> in_count(n_node, 0), out_count(n_node, 0);
  for (std::size_t e = 0; e < edges.size(); ++e) {
    if (!circuit.in_graph[e]) continue;
    ++out_count[static_cast<std::size_t>(edges[e].upstream)];
    ++in_count[static_cast<std::size_t>(port_node(g, edges[e].port))];
  }
  auto dead = [&](std::size_t n) { return (n != input && in_count[n] == 0) || (n != logits && out_count[n] == 0); };

  // Worklist: a dead node loses all its edges, which may kill the nodes at their other ends.
  // Counts only fall, so a dead node stays dead and is queued once.
  std::vector<std::size_t> work;
  std::vector<std::uint8_t> queued(n_node, 0);
  auto queue_if_dead = [&](std::size_t n) {
    if (!queued[n] && dead(n)) {
      queued[n] = 1;
      work.push_back(n);
    }
  };
  for (std::size_t n = 0; n < n_node; ++n) queue_if_dead(n);
  std::size_t removed = 0;
  auto remove = [&](std::size_t e) {
    circuit.in_graph[e] = 0;
    ++removed;
    const auto u = static_cast<std::size_t>(edges[e].upstream);
    const auto v = static_cast<std::size_t>(port_node(g, edges[e].port));
    --out_count[u];
    --in_count[v];
    queue_if_dead(u);
    queue_if_dead(v);
  };
  while (!work.empty()) {
    const std::size_t n = work.back();
    work.pop_back();
    if (n != logits)
      for (int e : g.edges_out_of(static_cast<int>(n)))
        if (circuit.in_graph[static_cast<std::size_t>(e)]) remove(static_cast<std::size_t>(e));
    for (int p : ports_of_node(g, static_cast<int>(n)))
      for (int e : g.edges_into(p))
        if (circuit.in_graph[static_cast<std::size_t>(e)]) remove(static_cast<std::size_t>(e));
  }
  return removed;
}

}  // namespace circuitry
