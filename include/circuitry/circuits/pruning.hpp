#pragma once
// From edge scores to a circuit: EAP-IG's Graph.apply_topn, apply_threshold and apply_greedy
// (hannamw/EAP-IG, src/eap/graph.py) at edge level. None of them prunes; call
// prune_dead_ends(circuit) afterwards for EAP-IG's `prune=True`.
//
// Scores are ranked by |score| (absolute = true, the default everywhere in EAP-IG and MIB) or by
// the signed score. Ties go to the lower edge index, so results are deterministic (EAP-IG's
// torch.argsort leaves tie order unspecified).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include "circuitry/core/error.hpp"
#include "circuitry/graph/circuit.hpp"
#include "circuitry/graph/graph.hpp"

namespace circuitry {

namespace detail {

/// Throws Error unless there is one score per edge and none is NaN (naming the first bad edge).
inline void check_edge_scores(const Graph& graph, const std::vector<double>& scores) {
  require(scores.size() == graph.n_edges(), "got " + std::to_string(scores.size()) + " scores for a graph of " +
                                                std::to_string(graph.n_edges()) + " edges");
  for (std::size_t e = 0; e < scores.size(); ++e)
    require(!std::isnan(scores[e]), "score of edge '" + graph.edges()[e].name + "' is NaN");
}

inline double edge_rank_key(double score, bool absolute) { return absolute ? std::fabs(score) : score; }

}  // namespace detail

/// Edge ids ordered by decreasing rank key, ties by increasing edge id.
inline std::vector<std::size_t> rank_edges(const Graph& graph, const std::vector<double>& scores,
                                           bool absolute = true) {
  detail::check_edge_scores(graph, scores);
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return detail::edge_rank_key(scores[a], absolute) > detail::edge_rank_key(scores[b], absolute);
  });
  return order;
}

/// The n highest-ranked edges (EAP-IG apply_topn, level='edge').
// The circuit points at the graph, so the graph must outlive it: no temporaries.
Circuit top_n(const Graph&&, const std::vector<double>&, std::size_t, bool = true) = delete;
Circuit threshold(const Graph&&, const std::vector<double>&, double, bool = true) = delete;
Circuit greedy(const Graph&&, const std::vector<double>&, std::size_t, bool = true) = delete;

inline Circuit top_n(const Graph& graph, const std::vector<double>& scores, std::size_t n, bool absolute = true) {
  require(n <= graph.n_edges(),
          "asked for the top " + std::to_string(n) + " edges of a graph with only " + std::to_string(graph.n_edges()));
  Circuit circuit(graph);
  const std::vector<std::size_t> order = rank_edges(graph, scores, absolute);
  for (std::size_t i = 0; i < n; ++i) circuit.in_graph[order[i]] = 1;
  return circuit;
}

/// Every edge whose rank key is >= t (EAP-IG apply_threshold, level='edge').
inline Circuit threshold(const Graph& graph, const std::vector<double>& scores, double t, bool absolute = true) {
  require(!std::isnan(t), "threshold is NaN");
  detail::check_edge_scores(graph, scores);
  Circuit circuit(graph);
  for (std::size_t e = 0; e < scores.size(); ++e) circuit.in_graph[e] = detail::edge_rank_key(scores[e], absolute) >= t;
  return circuit;
}

/// EAP-IG apply_greedy: grow from logits. The candidates are the edges into nodes already
/// reached (logits, or a node with an in-graph edge out of it); take the highest-ranked
/// candidate, and when its upstream node is reached for the first time, the edges into that
/// node's ports become candidates too. Stops after n edges.
inline Circuit greedy(const Graph& graph, const std::vector<double>& scores, std::size_t n, bool absolute = true) {
  require(n <= graph.n_edges(),
          "asked for " + std::to_string(n) + " greedy edges of a graph with only " + std::to_string(graph.n_edges()));
  detail::check_edge_scores(graph, scores);
  Circuit circuit(graph);
  std::vector<std::uint8_t> reached(n_nodes(graph), 0);

  // Max-heap on (key, -edge id): highest key first, then lowest edge id.
  using Entry = std::pair<double, long long>;
  std::priority_queue<Entry> candidates;
  auto reach = [&](int node) {
    reached[static_cast<std::size_t>(node)] = 1;
    for (int p : ports_of_node(graph, node))
      for (int e : graph.edges_into(p))
        candidates.emplace(detail::edge_rank_key(scores[static_cast<std::size_t>(e)], absolute),
                           -static_cast<long long>(e));
  };
  reach(static_cast<int>(graph.upstream().size()));  // logits
  // Every node has an edge to logits, so the candidates run out only after all edges are taken.
  for (std::size_t taken = 0; taken < n; ++taken) {
    const auto e = static_cast<std::size_t>(-candidates.top().second);
    candidates.pop();
    circuit.in_graph[e] = 1;
    const int u = graph.edges()[e].upstream;
    if (!reached[static_cast<std::size_t>(u)]) reach(u);
  }
  return circuit;
}

}  // namespace circuitry
