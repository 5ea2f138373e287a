#pragma once
// The residual-stream edge graph of ACDC / EAP with the EAP-IG names (DESIGN.md section 2).
//
// Upstream nodes write into the residual stream: `input` (the token embedding, plus the
// learned position embedding where the model has one; rotary models take positions inside
// attention), `a{l}.h{h}` (head h of layer l: z_h W_O[h], without the attention output bias)
// and `m{l}` (MLP l's output, with its bias). Downstream ports read from it: every head reads
// its own copy for each of q, k and v (`a{l}.h{h}<q>`), MLPs read `m{l}`, and the final
// norm reads `logits`. An edge u->p exists when u's output is part of p's input in the
// ordinary forward pass (in a parallel attention/MLP block, GPT-NeoX's, the heads of layer l
// do not feed m{l}). The graph is built from a GraphShape, which the architecture derives
// from its component types, so every architecture shares this code.
//
// Grouped-query attention (Llama 3, Qwen2, Mistral: KV < H heads of keys and values) keeps one
// <k> and one <v> port per QUERY head, `a{l}.h{h}<k>` for every h, not one per KV head. Each
// query head reads its own copy of the residual and computes its own keys and values with its
// group's shared W_K, W_V, so patching u->a{l}.h{h}<k> changes the keys of head h only. This
// is what EAP-IG does (its attribute() asserts TransformerLens' ungroup_grouped_query_attention,
// under which hook_k_input / hook_v_input have one slot per query head); per-KV-head ports
// (`a{l}.g{g}<k>`) would name edges no other tool has and would couple the heads of a group. Edge names and counts are therefore those
// of a model with H ordinary heads, and circuits move between the tools unchanged.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "circuitry/core/error.hpp"

namespace circuitry {

/// What the architecture's components say about the graph.
struct GraphShape {
  std::size_t n_layers = 0;
  std::size_t n_heads = 0;
  bool has_mlp = true;             // attention-only models have no MLP nodes
  bool parallel_attn_mlp = false;  // GPT-J style: heads of layer l do not feed m{l}
};

/// Index of the first node of layer `layer` (its head 0) among the upstream nodes, which are in
/// forward order: `input`, then per layer its `n_head` heads and, when the model has MLPs, its
/// MLP. So head h of layer l is first_node_of_layer(l, ...) + h, MLP l follows its heads, and
/// first_node_of_layer(n_layers, ...) is the number of upstream nodes. Graph::head_node and
/// Graph::mlp_node use it; so does code with no Graph at hand (the forward).
constexpr std::size_t first_node_of_layer(std::size_t layer, std::size_t n_head, bool has_mlp) {
  return 1 + layer * (n_head + (has_mlp ? 1 : 0));
}

enum class NodeKind : std::uint8_t { Input, Head, Mlp };
enum class PortKind : std::uint8_t { Q, K, V, Mlp, Logits };

struct UpstreamNode {
  NodeKind kind;
  int layer = -1;  // -1 for input
  int head = -1;   // -1 unless kind == Head
  std::string name;
};

struct DownstreamPort {
  PortKind kind;
  int layer = -1;  // n_layers for logits
  int head = -1;   // -1 unless q/k/v
  std::string name;
  /// The node this port belongs to (`a2.h3` for `a2.h3<q>`, `m1`, `logits`).
  std::string node_name;
};

struct Edge {
  int upstream = 0;  // index into Graph::upstream()
  int port = 0;      // index into Graph::ports()
  std::string name;  // "a0.h1->a2.h3<q>"
};

class Graph {
 public:
  explicit Graph(GraphShape shape) : shape_(shape) { build(); }

  const GraphShape& shape() const { return shape_; }
  const std::vector<UpstreamNode>& upstream() const { return upstream_; }
  const std::vector<DownstreamPort>& ports() const { return ports_; }
  const std::vector<Edge>& edges() const { return edges_; }
  std::size_t n_edges() const { return edges_.size(); }

  /// Index of head (l, h) / MLP l / input among the upstream nodes.
  int input_node() const { return 0; }
  int head_node(std::size_t layer, std::size_t head) const {
    return static_cast<int>(first_node_of_layer(layer, shape_.n_heads, shape_.has_mlp) + head);
  }
  int mlp_node(std::size_t layer) const {
    require(shape_.has_mlp, "this model has no MLP nodes");
    return static_cast<int>(first_node_of_layer(layer, shape_.n_heads, shape_.has_mlp) + shape_.n_heads);
  }
  /// Index of a port: q/k/v of head (l, h), MLP l's input, or logits.
  int head_port(std::size_t layer, std::size_t head, PortKind kind) const {
    return static_cast<int>(layer * ports_per_layer_ + 3 * head + static_cast<std::size_t>(kind));
  }
  int mlp_port(std::size_t layer) const {
    require(shape_.has_mlp, "this model has no MLP nodes");
    return static_cast<int>(layer * ports_per_layer_ + 3 * shape_.n_heads);
  }
  int logits_port() const { return static_cast<int>(ports_.size() - 1); }

  /// Edge index for (upstream, port), or -1 when that pair is not an edge.
  int edge_index(int upstream, int port) const {
    return edge_of_pair_[static_cast<std::size_t>(upstream) * ports_.size() + static_cast<std::size_t>(port)];
  }
  /// Edges into a port, in upstream order.
  const std::vector<int>& edges_into(int port) const { return edges_into_[static_cast<std::size_t>(port)]; }
  /// Edges out of an upstream node.
  const std::vector<int>& edges_out_of(int upstream) const {
    return edges_out_of_[static_cast<std::size_t>(upstream)];
  }

  int find_edge(std::string_view name) const { return lookup(edge_ids_, name, "edge"); }
  int find_upstream(std::string_view name) const { return lookup(upstream_ids_, name, "upstream node"); }
  int find_port(std::string_view name) const { return lookup(port_ids_, name, "downstream input"); }

 private:
  void build() {
    require(shape_.n_layers > 0 && shape_.n_heads > 0, "a graph needs at least one layer and one head");
    ports_per_layer_ = 3 * shape_.n_heads + (shape_.has_mlp ? 1 : 0);
    // Position of each node in the forward order: input 0, layer l's heads 2l+1, its MLP 2l+2
    // (parallel models put the MLP at 2l+1 too, so heads of layer l do not feed m{l}).
    std::vector<int> up_stage, port_stage;
    upstream_.push_back({NodeKind::Input, -1, -1, "input"});
    up_stage.push_back(0);
    for (std::size_t l = 0; l < shape_.n_layers; ++l) {
      const int L = static_cast<int>(l);
      for (std::size_t h = 0; h < shape_.n_heads; ++h) {
        upstream_.push_back({NodeKind::Head, L, static_cast<int>(h), head_name(l, h)});
        up_stage.push_back(2 * L + 1);
        for (auto [kind, tag] : {std::pair{PortKind::Q, "<q>"}, {PortKind::K, "<k>"}, {PortKind::V, "<v>"}}) {
          ports_.push_back({kind, L, static_cast<int>(h), head_name(l, h) + tag, head_name(l, h)});
          port_stage.push_back(2 * L + 1);
        }
      }
      if (shape_.has_mlp) {
        const int stage = shape_.parallel_attn_mlp ? 2 * L + 1 : 2 * L + 2;
        upstream_.push_back({NodeKind::Mlp, L, -1, "m" + std::to_string(l)});
        up_stage.push_back(stage);
        ports_.push_back({PortKind::Mlp, L, -1, "m" + std::to_string(l), "m" + std::to_string(l)});
        port_stage.push_back(stage);
      }
    }
    ports_.push_back({PortKind::Logits, static_cast<int>(shape_.n_layers), -1, "logits", "logits"});
    port_stage.push_back(2 * static_cast<int>(shape_.n_layers) + 1);

    edge_of_pair_.assign(upstream_.size() * ports_.size(), -1);
    edges_into_.resize(ports_.size());
    edges_out_of_.resize(upstream_.size());
    for (std::size_t p = 0; p < ports_.size(); ++p) {
      for (std::size_t u = 0; u < upstream_.size(); ++u) {
        if (up_stage[u] >= port_stage[p]) continue;
        const int id = static_cast<int>(edges_.size());
        edges_.push_back({static_cast<int>(u), static_cast<int>(p), upstream_[u].name + "->" + ports_[p].name});
        edge_of_pair_[u * ports_.size() + p] = id;
        edges_into_[p].push_back(id);
        edges_out_of_[u].push_back(id);
      }
    }
    for (std::size_t i = 0; i < edges_.size(); ++i) edge_ids_.emplace(edges_[i].name, static_cast<int>(i));
    for (std::size_t i = 0; i < upstream_.size(); ++i) upstream_ids_.emplace(upstream_[i].name, static_cast<int>(i));
    for (std::size_t i = 0; i < ports_.size(); ++i) port_ids_.emplace(ports_[i].name, static_cast<int>(i));
  }

  static std::string head_name(std::size_t l, std::size_t h) {
    return "a" + std::to_string(l) + ".h" + std::to_string(h);
  }

  int lookup(const std::unordered_map<std::string, int>& ids, std::string_view name, const char* what) const {
    auto it = ids.find(std::string(name));
    if (it == ids.end())
      throw Error("unknown " + std::string(what) + " '" + std::string(name) + "' (this model has " +
                  std::to_string(shape_.n_layers) + " layers x " + std::to_string(shape_.n_heads) +
                  " heads" + (shape_.has_mlp ? "" : ", no MLPs") +
                  "; names look like input, a0.h1, m2, a0.h1->a2.h3<q>, m1->logits)");
    return it->second;
  }

  GraphShape shape_;
  std::size_t ports_per_layer_ = 0;
  std::vector<UpstreamNode> upstream_;
  std::vector<DownstreamPort> ports_;
  std::vector<Edge> edges_;
  std::vector<int> edge_of_pair_;
  std::vector<std::vector<int>> edges_into_, edges_out_of_;
  std::unordered_map<std::string, int> edge_ids_, upstream_ids_, port_ids_;
};

}  // namespace circuitry
