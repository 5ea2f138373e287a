#pragma once
// Path patching (Wang et al. 2022, "Interpretability in the Wild"; Goldowsky-Dill et al.
// 2023, "Localizing Model Behavior with Path Patching"), DESIGN.md section 2.
//
// Sender -> receiver: run 1 feeds the clean input with the senders' outputs set to their
// corrupted values and every other head frozen to its clean output (MLPs frozen too, or
// recomputed); the receivers' inputs are recorded. Run 2 is the clean run with each
// receiver's input replaced by its recording. Effect = M(run 2) - M(clean).
//
// Path sets: a hypothesis is a set P of paths ending at logits. In the treeified model a
// complete path input -> ... -> logits reads x when it ends with some path in P and x'
// otherwise. A node instance is named by its suffix s (its path to logits); it takes its
// clean output when some p in P is a suffix of s, its corrupted output when s is not a
// suffix of any p, and is recomputed from its ports otherwise, each incoming edge e
// extending the suffix to e + s. AUE = E[delta(run(x), run_P)], ATE = AUE of the empty
// set, proportion explained = 1 - AUE / ATE.
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "circuitry/patching/edge_patching.hpp"

namespace circuitry {

struct PathPatchResult {
  double effect = 0, clean_metric = 0, patched_metric = 0;
};

namespace detail {

/// The upstream node a port belongs to (-1 for logits).
inline int node_of_port(const Graph& g, int port) {
  const auto& p = g.ports()[static_cast<std::size_t>(port)];
  switch (p.kind) {
    case PortKind::Logits: return -1;
    case PortKind::Mlp: return g.mlp_node(static_cast<std::size_t>(p.layer));
    default: return g.head_node(static_cast<std::size_t>(p.layer), static_cast<std::size_t>(p.head));
  }
}

/// Residual stage a port reads: 2l for q/k/v of layer l, 2l + 1 for m{l}, 2L for logits.
inline std::size_t stage_of_port(const Graph& g, int port) {
  const auto& p = g.ports()[static_cast<std::size_t>(port)];
  const std::size_t l = static_cast<std::size_t>(p.layer);
  return p.kind == PortKind::Logits ? 2 * l : p.kind == PortKind::Mlp ? 2 * l + 1 : 2 * l;
}

/// Run 1: senders corrupted, other heads (and the input) clean, MLPs clean or recomputed.
template <class T, class Kernels>
class SenderRun : public Intervention<T> {
 public:
  SenderRun(const Graph& g, const std::set<int>& senders, const std::vector<T>& clean, const std::vector<T>& corrupted,
            std::size_t bpd, bool recompute_mlps)
      : g_(&g), senders_(&senders), clean_(&clean), corrupted_(&corrupted), bpd_(bpd), recompute_(recompute_mlps) {}
  void node_output(std::size_t node, const T*, T* value) override {
    const bool sender = senders_->count(static_cast<int>(node)) > 0;
    const bool mlp = g_->upstream()[node].kind == NodeKind::Mlp;
    if (!sender && mlp && recompute_) return;
    const std::vector<T>& src = sender ? *corrupted_ : *clean_;
    Kernels::copy(bpd_, src.data() + node * bpd_, value);
  }

 private:
  const Graph* g_;
  const std::set<int>* senders_;
  const std::vector<T>*clean_, *corrupted_;
  std::size_t bpd_;
  bool recompute_;
};

/// Run 2: receivers read their recorded inputs; everything else is the ordinary clean run.
template <class T, class Kernels>
class ReceiverOverride : public Intervention<T> {
 public:
  ReceiverOverride(std::map<int, std::vector<T>> recorded, std::size_t bpd) : recorded_(std::move(recorded)), bpd_(bpd) {}
  bool port_inputs(std::size_t first, std::size_t n, const T* resid, const T*, T* inputs) override {
    bool any = false;
    for (std::size_t i = 0; i < n; ++i) {
      auto it = recorded_.find(static_cast<int>(first + i));
      const T* src = it == recorded_.end() ? resid : it->second.data();
      any = any || it != recorded_.end();
      Kernels::copy(bpd_, src, inputs + i * bpd_);
    }
    return any;
  }

 private:
  std::map<int, std::vector<T>> recorded_;
  std::size_t bpd_;
};

}  // namespace detail

/// Sender -> receiver path patching. senders: upstream node names (input, a1.h2, m0);
/// receivers: port names (a3.h0<k>, m2, logits).
template <class M, class Metric, class T = typename M::scalar>
PathPatchResult path_patch(const M& model, const PatchingTask<T>& task, const Metric& metric, const std::vector<std::string>& senders,
                           const std::vector<std::string>& receivers, bool recompute_mlps = false) {
  require(!senders.empty() && !receivers.empty(), "path patching needs at least one sender and one receiver");
  const Graph g = model.graph();
  std::set<int> sender_ids;
  for (const auto& s : senders) sender_ids.insert(g.find_upstream(s));
  std::vector<int> receiver_ids;
  for (const auto& r : receivers) receiver_ids.push_back(g.find_port(r));
  const std::size_t BPD = task.clean.rows() * model.config().n_embd;
  const std::vector<T> clean = node_outputs(model, task.clean), corrupted = node_outputs(model, task.corrupted);

  using Kernels = typename M::backend;
  detail::SenderRun<T, Kernels> run1(g, sender_ids, clean, corrupted, BPD, recompute_mlps);
  const auto first = run_with(model, task.clean, run1);
  std::map<int, std::vector<T>> recorded;
  for (int r : receiver_ids) {
    const T* src = first.residuals.data() + detail::stage_of_port(g, r) * BPD;
    std::vector<T>& input = recorded[r];  // [B*P*D]
    input.resize(BPD);
    Kernels::copy(BPD, src, input.data());
  }
  detail::ReceiverOverride<T, Kernels> run2(std::move(recorded), BPD);
  const auto second = run_with(model, task.clean, run2);
  PathPatchResult r;
  r.clean_metric = metric_value(metric, task.clean_logits, task.data);
  r.patched_metric = metric_value(metric, second.logits, task.data);
  r.effect = r.patched_metric - r.clean_metric;
  return r;
}

struct PathSetResult {
  double aue = 0, ate = 0, proportion_explained = 0;
};

/// A path as edge ids, checked to be a chain that ends at logits.
inline std::vector<int> parse_path(const Graph& g, const std::vector<std::string>& names) {
  require(!names.empty(), "a path needs at least one edge");
  std::vector<int> path;
  for (const auto& n : names) path.push_back(g.find_edge(n));
  for (std::size_t i = 0; i + 1 < path.size(); ++i) {
    const auto& a = g.edges()[static_cast<std::size_t>(path[i])];
    const auto& b = g.edges()[static_cast<std::size_t>(path[i + 1])];
    require(detail::node_of_port(g, a.port) == b.upstream,
            "path is not a chain: '" + a.name + "' ends at " + g.ports()[static_cast<std::size_t>(a.port)].node_name + " but '" + b.name +
                "' starts at " + g.upstream()[static_cast<std::size_t>(b.upstream)].name);
  }
  require(g.edges()[static_cast<std::size_t>(path.back())].port == g.logits_port(),
          "path must end at logits, but its last edge is '" + names.back() + "'");
  return path;
}

namespace detail {

template <class M, class T>
class TreeifiedModel {
  using Kernels = typename M::backend;

 public:
  TreeifiedModel(const M& model, const PatchingTask<T>& task, const std::vector<std::vector<int>>& paths, const std::vector<T>& clean,
                 const std::vector<T>& corrupted)
      : model_(model), task_(task), g_(model.graph()), paths_(paths), clean_(clean), corrupted_(corrupted),
        bpd_(task.clean.rows() * model.config().n_embd) {}

  /// Last-position logits of the treeified run. [batch, vocab]
  std::vector<T> logits() {
    const std::vector<T> x = port_input(g_.logits_port(), {});
    return logits_from_residual(model_, x.data(), task_.clean.batch, task_.clean.pos, task_.clean.readout, arena_);
  }

 private:
  static bool ends_with(const std::vector<int>& s, const std::vector<int>& p) {
    return p.size() <= s.size() && std::equal(p.rbegin(), p.rend(), s.rbegin());
  }

  /// Output of node u at the tree position with suffix s. [B*P*D]
  std::vector<T> node_value(int u, const std::vector<int>& s) {
    bool recompute = false;
    for (const auto& p : paths_) {
      if (ends_with(s, p)) return slice(clean_, u);
      if (p.size() > s.size() && ends_with(p, s)) recompute = true;
    }
    if (!recompute || g_.upstream()[static_cast<std::size_t>(u)].kind == NodeKind::Input) return slice(corrupted_, u);
    auto key = std::make_pair(u, s);
    if (auto it = memo_.find(key); it != memo_.end()) return it->second;
    const auto& node = g_.upstream()[static_cast<std::size_t>(u)];
    const std::size_t l = static_cast<std::size_t>(node.layer), B = task_.clean.batch, P = task_.clean.pos;
    std::vector<T> out(bpd_);
    if (node.kind == NodeKind::Mlp) {
      const auto x = port_input(g_.mlp_port(l), s);
      mlp_output(model_, l, x.data(), B * P, arena_, out.data());
    } else {
      const std::size_t h = static_cast<std::size_t>(node.head);
      const auto q = port_input(g_.head_port(l, h, PortKind::Q), s), k = port_input(g_.head_port(l, h, PortKind::K), s),
                 v = port_input(g_.head_port(l, h, PortKind::V), s);
      head_output(model_, l, h, q.data(), k.data(), v.data(), B, P, model_.key_mask(task_.clean, 1, l), arena_, out.data());
    }
    arena_.reset();
    return memo_[key] = out;
  }

  /// Input of a port at a tree position: the constant biases plus every incoming edge's value.
  std::vector<T> port_input(int port, const std::vector<int>& s) {
    const auto bias = residual_bias(model_, stage_of_port(g_, port));
    std::vector<T> x(bpd_);
    Kernels::copy_blocks(bpd_ / bias.size(), bias.size(), bias.data(), 0, x.data(), bias.size());
    for (int e : g_.edges_into(port)) {
      std::vector<int> child{e};
      child.insert(child.end(), s.begin(), s.end());
      const auto v = node_value(g_.edges()[static_cast<std::size_t>(e)].upstream, child);
      Kernels::axpy(bpd_, T(1), v.data(), x.data());
    }
    return x;
  }

  std::vector<T> slice(const std::vector<T>& all, int u) const {
    return std::vector<T>(all.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(u) * bpd_),
                          all.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(u + 1) * bpd_));
  }

  const M& model_;
  const PatchingTask<T>& task_;
  Graph g_;
  const std::vector<std::vector<int>>& paths_;
  const std::vector<T>&clean_, &corrupted_;
  std::size_t bpd_;
  ArenaFor<M> arena_;
  std::map<std::pair<int, std::vector<int>>, std::vector<T>> memo_;
};

}  // namespace detail

/// AUE, ATE and proportion explained of a path-set hypothesis. delta is KL(p_clean || p_P)
/// for the kl metric (the default); for other metrics |M(clean) - M(run_P)|.
template <class M, class T = typename M::scalar>
PathSetResult evaluate_path_set(const M& model, const PatchingTask<T>& task, const std::vector<std::vector<std::string>>& paths,
                                MetricKind delta = MetricKind::KL) {
  // In the treeified model each head is computed alone; a norm after the heads' sum ties a head's
  // output to its siblings' in the same run, which no tree position has.
  require(!model.config().post_attention_norm,
          "path sets: a model with a norm after the heads' sum (Gemma) has no treeified form; use path patching or circuit evaluation");
  const Graph g = model.graph();
  std::vector<std::vector<int>> parsed, empty;
  for (const auto& p : paths) parsed.push_back(parse_path(g, p));
  const std::vector<T> clean = node_outputs(model, task.clean), corrupted = node_outputs(model, task.corrupted);
  const BuiltinMetric metric{delta};
  const double clean_metric = metric_value(metric, task.clean_logits, task.data);
  auto distance = [&](const std::vector<std::vector<int>>& set) {
    detail::TreeifiedModel<M, T> tree(model, task, set, clean, corrupted);
    const double m = metric_value(metric, tree.logits(), task.data);
    return delta == MetricKind::KL ? m : std::abs(m - clean_metric);
  };
  PathSetResult r;
  r.aue = distance(parsed);
  r.ate = distance(empty);
  require(r.ate != 0.0, "the clean and corrupted runs agree (ATE = 0): no effect to explain");
  r.proportion_explained = 1.0 - r.aue / r.ate;
  return r;
}

}  // namespace circuitry
