#pragma once
// Graphviz DOT export of a circuit, in the spirit of EAP-IG's Graph.to_graphviz and ACDC's
// show(): only in-graph edges and the nodes they touch; one box per head (its q, k and v
// inputs are told apart by edge colour), one per MLP, `input` and `logits`. Layers are ranks
// (heads of a layer side by side, the MLP a rank above), logits on top, input at the bottom
// (or left to right). Edge width grows with |score| relative to the largest in the circuit;
// negative scores are dashed. Hovering an edge in the SVG shows its name and score.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "circuitry/core/error.hpp"
#include "circuitry/graph/circuit.hpp"
#include "circuitry/graph/graph.hpp"
#include "circuitry/io/svg_plot.hpp"

namespace circuitry::io {

struct DotOptions {
  std::string title;           // graph label; empty for none
  bool left_to_right = false;  // default: bottom (input) to top (logits)
  double min_penwidth = 0.6;   // EAP-IG's to_graphviz range
  double max_penwidth = 5.0;
  bool legend = true;
};

namespace detail {

/// Edge colour per port kind (Okabe-Ito: q blue, k green, v vermillion, MLP purple, logits black).
inline const char* dot_port_color(PortKind kind) {
  switch (kind) {
    case PortKind::Q: return "#0072B2";
    case PortKind::K: return "#009E73";
    case PortKind::V: return "#D55E00";
    case PortKind::Mlp: return "#CC79A7";
    default: return "#222222";
  }
}

/// Node fill per kind: input and logits grey and yellow, heads light blue, MLPs light pink.
inline const char* dot_node_fill(const Graph& graph, int node) {
  if (static_cast<std::size_t>(node) == graph.upstream().size()) return "#fff2b3";
  switch (graph.upstream()[static_cast<std::size_t>(node)].kind) {
    case NodeKind::Head: return "#dbe9f6";
    case NodeKind::Mlp: return "#f6dcea";
    default: return "#e6e6e6";
  }
}

/// A double-quoted DOT string.
inline std::string dot_quote(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

/// Rank of a node: input 0, heads of layer l 2l+1, MLP l 2l+2, logits last.
inline int dot_rank(const Graph& graph, int node) {
  if (static_cast<std::size_t>(node) == graph.upstream().size())
    return 2 * static_cast<int>(graph.shape().n_layers) + 1;
  const UpstreamNode& u = graph.upstream()[static_cast<std::size_t>(node)];
  return u.kind == NodeKind::Input ? 0 : 2 * u.layer + (u.kind == NodeKind::Head ? 1 : 2);
}

}  // namespace detail

/// The circuit as a DOT digraph. `scores` (one per edge, Graph order) sets widths, signs and
/// tooltips; pass an empty vector for a circuit without scores (uniform width, solid).
inline std::string to_dot(const Circuit& circuit, const std::vector<double>& scores, const DotOptions& options = {}) {
  circuit.check();
  const Graph& graph = *circuit.graph;
  require(
      scores.empty() || scores.size() == graph.n_edges(),
      "got " + std::to_string(scores.size()) + " scores for a graph of " + std::to_string(graph.n_edges()) + " edges");
  const bool scored = !scores.empty();
  double max_abs = 0;
  for (std::size_t e = 0; e < graph.n_edges(); ++e)
    if (circuit.in_graph[e] && scored) {
      require(std::isfinite(scores[e]), "score of edge '" + graph.edges()[e].name + "' is not finite");
      max_abs = std::max(max_abs, std::fabs(scores[e]));
    }

  std::string dot = "digraph circuit {\n";
  dot += std::string("  graph [rankdir=") + (options.left_to_right ? "LR" : "BT") +
         ", newrank=true, ranksep=0.5, nodesep=0.2, splines=true, fontname=\"Helvetica\", bgcolor=\"white\"";
  if (!options.title.empty()) dot += ", labelloc=t, fontsize=16, label=" + detail::dot_quote(options.title);
  dot += "];\n";
  dot += "  node [shape=box, style=\"filled,rounded\", color=\"#444444\", fontname=\"Helvetica\", fontsize=11];\n";
  dot += "  edge [arrowsize=0.5];\n";

  // Nodes, grouped by rank. An invisible spine through one anchor per rank keeps the ranks in
  // layer order; without it dot ranks a node by its longest path, so a9.h1 fed only by layer 0
  // would sit just above layer 0.
  const std::vector<std::uint8_t> mask = circuit.node_mask();
  std::map<int, std::vector<int>> by_rank;
  for (std::size_t n = 0; n < mask.size(); ++n)
    if (mask[n]) by_rank[detail::dot_rank(graph, static_cast<int>(n))].push_back(static_cast<int>(n));
  std::string spine;
  for (const auto& [rank, nodes] : by_rank) {
    const std::string anchor = "\"rank " + std::to_string(rank) + "\"";
    dot += "  { rank=same; " + anchor + " [style=invis, shape=point, width=0, height=0, label=\"\"];";
    for (int n : nodes)
      dot += " " + detail::dot_quote(node_name(graph, n)) + " [fillcolor=\"" + detail::dot_node_fill(graph, n) + "\"];";
    dot += " }\n";
    spine += (spine.empty() ? "  " : " -> ") + anchor;
  }
  if (by_rank.size() > 1) dot += spine + " [style=invis];\n";

  // Edges: width by |score|, colour by port kind, dashed when negative.
  for (std::size_t e = 0; e < graph.n_edges(); ++e) {
    if (!circuit.in_graph[e]) continue;
    const Edge& edge = graph.edges()[e];
    const DownstreamPort& port = graph.ports()[static_cast<std::size_t>(edge.port)];
    const double width = scored && max_abs > 0
                             ? std::max(options.min_penwidth, options.max_penwidth * std::fabs(scores[e]) / max_abs)
                             : 1.2;
    std::string tooltip = edge.name;
    if (scored) tooltip += ": " + detail::svg_number("%.6g", scores[e]);
    dot += "  " + detail::dot_quote(graph.upstream()[static_cast<std::size_t>(edge.upstream)].name) + " -> " +
           detail::dot_quote(port.node_name) + " [color=\"" + detail::dot_port_color(port.kind) +
           "\", penwidth=" + detail::svg_number("%.2f", width) + (scored && scores[e] < 0 ? ", style=dashed" : "") +
           ", tooltip=" + detail::dot_quote(tooltip) + "];\n";
  }

  if (options.legend) {
    std::string rows;
    const std::pair<PortKind, const char*> kinds[] = {{PortKind::Q, "into a query"},
                                                      {PortKind::K, "into a key"},
                                                      {PortKind::V, "into a value"},
                                                      {PortKind::Mlp, "into an MLP"},
                                                      {PortKind::Logits, "into the logits"}};
    for (const auto& [kind, text] : kinds)
      if (kind != PortKind::Mlp || graph.shape().has_mlp)
        rows += std::string("<TR><TD WIDTH=\"28\" HEIGHT=\"4\" FIXEDSIZE=\"TRUE\" BGCOLOR=\"") +
                detail::dot_port_color(kind) + "\"></TD><TD ALIGN=\"LEFT\">" + text + "</TD></TR>";
    if (scored)
      rows +=
          "<TR><TD>- - -</TD><TD ALIGN=\"LEFT\">negative score</TD></TR>"
          "<TR><TD>width</TD><TD ALIGN=\"LEFT\">|score|, widest " +
          detail::svg_escape(detail::svg_number("%.3g", max_abs)) + "</TD></TR>";
    dot +=
        "  legend [shape=plaintext, style=\"\", fontsize=10, label=<<TABLE BORDER=\"1\" COLOR=\"#999999\" "
        "CELLBORDER=\"0\" CELLSPACING=\"3\"><TR><TD COLSPAN=\"2\"><B>edges</B></TD></TR>" +
        rows + "</TABLE>>];\n";
    // Beside logits when there is one, else anywhere.
    if (mask.back()) dot += "  { rank=same; \"logits\"; legend; }\n";
  }
  dot += "}\n";
  return dot;
}

inline void write_dot(const std::filesystem::path& path, const Circuit& circuit, const std::vector<double>& scores,
                      const DotOptions& options = {}) {
  detail::write_text_document(path, to_dot(circuit, scores, options));
}

}  // namespace circuitry::io
