#pragma once
// The patched-lanes engine: many patched runs of one task at once, each a "lane" with its own
// set of patched edges, stacked along the batch dimension ([lane, batch, pos, d_model]) so that
// the node forwards run as one big batch. Exact patching (one edge per lane, patching/exact.hpp)
// and ACDC (the edges removed so far plus one window of candidates per lane, circuits/acdc.hpp)
// are its two uses; DESIGN.md section 2 gives the argument in full.
//
// Patching edge u->p makes p read resid + (src_u - out_u(run)). When every patched edge of a run
// points into a port of layer l0 or later, everything before layer l0 is the clean run's, so
// the run restarts from the clean run's residual at layer l0 (record_run) and recomputes only
// layers l0.. . From there on, each node is in each lane one of
//   clean     none of its inputs changed (a node of layer l0 whose ports the lane does not patch,
//             an MLP of layer l0 reading an unchanged residual): the clean output, not computed;
//   source    every path from it to the logits is patched in the lane, so its output cannot reach
//             the lane's logits: it takes its source (the residual then holds src_u, and every
//             patched reader gets src_u + (src_u - src_u), as patching defines); not computed;
//   computed  recomputed, on the lanes from the first to the last that compute it.
// Under a norm after the heads' sum (Gemma) a head's output is its share of the normalised sum,
// so a lane computes all of a layer's heads or none of them (DESIGN.md section 2).
// A layer where every lane computes every head and no lane patches a head's port runs its
// attention whole (one q|k|v GEMM); any other runs head by head. Only the readout rows' logits
// are wanted, so the last layer runs its queries, head outputs and MLP on those rows only.
#include <cstdint>
#include <utility>
#include <vector>

#include "circuitry/patching/edge_patching.hpp"
#include "circuitry/models/layer_step.hpp"

namespace circuitry {

template <class M, class T = typename M::scalar>
class PatchedLanes {
  using Kernels = typename M::backend;
  using Lanes = LaneRun<T, Kernels>;
  enum class NodeState : std::uint8_t { clean, source, computed };

 public:
  /// source: what patched edges read, per upstream node [n_upstream, batch, pos, d_model]
  /// (ablation_source); the task supplies the clean input.
  PatchedLanes(const M& model, const PatchingTask<T>& task, std::vector<T> source)
      : model_(&model), task_(&task), graph_(model.graph()), B_(task.clean.batch), P_(task.clean.pos),
        R_(task.clean.readout.size()), D_(model.config().n_embd), H_(model.config().n_head), L_(model.config().n_layer),
        N_(model.n_upstream()) {
    require(source.size() == N_ * B_ * P_ * D_, "patched lanes: the ablation source has the wrong size");
    RecordedRun<T> clean = record_run(model, task.clean);
    clean_ = std::move(clean.node_outputs);
    resid_ = std::move(clean.residuals);
    source_ = std::move(source);
    delta_.resize(N_ * B_ * P_ * D_);  // src_u - out_u(clean)
    Kernels::subtract(delta_.size(), source_.data(), clean_.data(), delta_.data());
    clean_last_ = gather_last(clean_.data()), source_last_ = gather_last(source_.data()), delta_last_ = gather_last(delta_.data());
    edge_layer_.resize(graph_.n_edges()), edge_reader_.resize(graph_.n_edges());
    for (std::size_t e = 0; e < graph_.n_edges(); ++e) {
      const DownstreamPort& p = graph_.ports()[static_cast<std::size_t>(graph_.edges()[e].port)];
      const std::size_t l = static_cast<std::size_t>(p.layer);
      edge_layer_[e] = p.layer;
      edge_reader_[e] = p.kind == PortKind::Logits ? N_
                        : p.kind == PortKind::Mlp  ? static_cast<std::size_t>(graph_.mlp_node(l))
                                                   : static_cast<std::size_t>(graph_.head_node(l, static_cast<std::size_t>(p.head)));
    }
  }

  const Graph& graph() const { return graph_; }

  /// Logits [lanes * readout rows, vocab] of one patched run per lane. Every edge flagged in a
  /// lane's mask (one flag per edge) must point into a port of `first_port`'s layer or later.
  std::vector<T> run(int first_port, const std::vector<const std::uint8_t*>& lanes) const {
    Workspace& w = workspace_;
    plan(static_cast<std::size_t>(graph_.ports()[static_cast<std::size_t>(first_port)].layer), lanes);
    const std::size_t K = w.K, BPD = B_ * P_ * D_;
    Lanes& run = w.run;
    run.K = K, run.last_rows = false;
    run.resid.resize(K * BPD);  // [K][B*P*D], then [K][R*D] from the last layer's heads on
    for (std::size_t k = 0; k < K; ++k) Kernels::copy(BPD, resid_.data() + 2 * w.l0 * BPD, run.resid.data() + k * BPD);
    if (w.l0 == L_) run.keep_readout_rows(task_->clean, D_);  // a run that restarts at the logits
    Io io{{}, this};
    ContextFor<M> ctx(run.arena);
    for (std::size_t l = w.l0; l < L_; ++l) layer_step(ctx, *model_, task_->clean, l, l + 1 == L_, run, io);
    const T* x = port_input(static_cast<std::size_t>(graph_.logits_port()), 0, K, w.port_in[0]);  // [K * R, D]
    run.arena.reset();
    std::vector<std::size_t> rows(K * R_);
    for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = i;
    return logits_from_residual(*model_, x, K * R_, 1, rows, run.arena);
  }

 private:
  /// Buffers and the plan of one run, kept between runs so that repeated runs do not fault in fresh pages.
  struct Workspace {
    std::size_t K = 0, l0 = 0, n0 = 0;
    const std::vector<const std::uint8_t*>* lanes = nullptr;
    std::vector<NodeState> state;         // [node - n0][lane]
    std::vector<std::ptrdiff_t> slot;     // [node - n0][lane]: where its diff src_u - out_u(run) is kept, or -1
    std::vector<T> diff_full, diff_last;  // [slot][B*P*D], [slot][R*D]
    std::vector<std::uint8_t> port_patched;      // [port - the restart layer's first][lane]
    std::vector<std::uint8_t> patched_upstream;  // [upstream node] one lane's flags into one port
    std::vector<std::size_t> total_group;        // per lane: 1 + the port group whose sum `total` holds, 0 for none
    std::vector<T> total, port_in[3];            // [lane][rows * D] each
    Lanes run;                                   // the lanes' residual and the layer step's buffers
  };

  /// The layer step's LayerIo (models/layer_step.hpp): the lanes' states and diffs.
  struct Io : LayerIoBase<T> {
    const PatchedLanes* self;
    HeadsPlan attention(std::size_t l, const Lanes&) const { return self->whole_attention(l) ? HeadsPlan::whole_sum : HeadsPlan::head_by_head; }
    std::pair<std::size_t, std::size_t> node_lanes(std::size_t u) const { return self->computed_lanes(u); }
    const T* port_input(std::size_t p, std::size_t a, std::size_t b, const Lanes&) const {
      const DownstreamPort& port = self->graph_.ports()[p];
      const std::size_t j = port.kind == PortKind::Mlp ? 0 : static_cast<std::size_t>(port.kind);  // q, k, v: 0, 1, 2
      return self->port_input(p, a, b, self->workspace_.port_in[j]);
    }
    const T* node_value(std::size_t u, std::size_t k, const T* computed, bool at_last) const {
      const T* v = self->value(u, k, computed, at_last);
      if (self->state(u, k) == NodeState::computed) self->keep_diff(u, k, v, at_last);
      return v;
    }
    void residual(std::size_t, const Lanes&) const {}
  };

  bool flagged(std::size_t k, int e) const { return (*workspace_.lanes)[k][static_cast<std::size_t>(e)] != 0; }
  /// Whether lane k patches an edge into port p (a port of the restart layer or later).
  bool patches(std::size_t k, std::size_t p) const {
    return workspace_.port_patched[(p - ports_of(workspace_.l0)) * workspace_.K + k] != 0;
  }
  std::size_t node0(std::size_t l) const { return first_node_of_layer(l, H_, M::architecture::has_mlp); }
  std::size_t ports_of(std::size_t l) const { return l * model_->ports_per_layer(); }
  NodeState& state(std::size_t u, std::size_t k) const { return workspace_.state[(u - workspace_.n0) * workspace_.K + k]; }
  bool head_patched(std::size_t k, std::size_t l, std::size_t h) const {
    const std::size_t q = ports_of(l) + 3 * h;
    return patches(k, q) || patches(k, q + 1) || patches(k, q + 2);
  }

  /// The restart layer, which ports each lane patches, and each late node's state and diff slot
  /// in each lane.
  void plan(std::size_t l0, const std::vector<const std::uint8_t*>& lanes) const {
    Workspace& w = workspace_;
    const std::size_t K = lanes.size(), n_late = N_ - node0(l0);
    w.K = K, w.l0 = l0, w.n0 = node0(l0), w.lanes = &lanes;
    w.port_patched.assign((graph_.ports().size() - ports_of(l0)) * K, 0);  // [port - first][lane]
    std::vector<std::uint8_t> read(n_late * K, 0);  // [node - n0][lane]: the lane patches an edge out of the node
    for (std::size_t k = 0; k < K; ++k)
      for (std::size_t e = 0; e < graph_.n_edges(); ++e) {
        if (!lanes[k][e]) continue;
        const Edge& edge = graph_.edges()[e];
        if (static_cast<std::size_t>(edge_layer_[e]) < l0)
          throw Error("patched lanes: the patched edge " + edge.name + " points into a port before the restart layer");
        w.port_patched[(static_cast<std::size_t>(edge.port) - ports_of(l0)) * K + k] = 1;
        if (static_cast<std::size_t>(edge.upstream) >= w.n0) read[(static_cast<std::size_t>(edge.upstream) - w.n0) * K + k] = 1;
      }
    // needed: one of the node's edges is not patched in the lane and leads to the logits or to a
    // needed node. Nodes are visited last to first, so every reader is decided before its writers.
    w.state.assign(n_late * K, NodeState::computed);
    std::vector<std::uint8_t> needed(n_late * K, 0);
    for (std::size_t u = N_; u-- > w.n0;)
      for (int e : graph_.edges_out_of(static_cast<int>(u))) {
        const std::size_t reader = edge_reader_[static_cast<std::size_t>(e)];
        for (std::size_t k = 0; k < K; ++k)
          if (!flagged(k, e) && (reader == N_ || needed[(reader - w.n0) * K + k])) needed[(u - w.n0) * K + k] = 1;
      }
    for (std::size_t u = w.n0; u < N_; ++u)
      for (std::size_t k = 0; k < K; ++k)
        if (!needed[(u - w.n0) * K + k]) state(u, k) = NodeState::source;
    if (l0 < L_)  // the restart layer: a node whose inputs did not change is clean
      for (std::size_t k = 0; k < K; ++k) {
        bool heads_changed = false;
        for (std::size_t h = 0; h < H_; ++h) {
          NodeState& s = state(w.n0 + h, k);
          if (s == NodeState::computed && !head_patched(k, l0, h)) s = NodeState::clean;
          heads_changed = heads_changed || s != NodeState::clean;
        }
        if constexpr (M::architecture::has_mlp) {
          NodeState& s = state(w.n0 + H_, k);
          const bool reads_changed = !M::parallel && heads_changed;  // a parallel block's MLP reads the layer's input
          if (s == NodeState::computed && !reads_changed && !patches(k, ports_of(l0) + 3 * H_)) s = NodeState::clean;
        }
      }
    // Under a norm after the heads' sum every head's share depends on every head of its layer:
    // a lane that changes any head of a layer computes its clean heads too (a source head's
    // output is still computed for the others' norm, and the lane keeps taking its source).
    if (model_->config().post_attention_norm)
      for (std::size_t l = l0; l < L_; ++l)
        for (std::size_t k = 0; k < K; ++k) {
          bool any_changed = false;
          for (std::size_t h = 0; h < H_; ++h) any_changed = any_changed || state(node0(l) + h, k) != NodeState::clean;
          if (any_changed)
            for (std::size_t h = 0; h < H_; ++h)
              if (NodeState& s = state(node0(l) + h, k); s == NodeState::clean) s = NodeState::computed;
        }
    // A computed node's diff is kept for the lanes that patch one of its edges.
    std::size_t slots = 0;
    w.slot.assign(n_late * K, -1);
    for (std::size_t i = 0; i < n_late * K; ++i)
      if (read[i] && w.state[i] == NodeState::computed) w.slot[i] = static_cast<std::ptrdiff_t>(slots++);
    w.diff_full.resize(slots * B_ * P_ * D_), w.diff_last.resize(slots * R_ * D_);
    w.total_group.assign(K, 0);
  }

  /// Lane k's diff src_u - out_u(run) of node u (nullptr where it is zero, or, for a computed
  /// node, where no patched edge reads it, so it was not kept): full rows [B*P*D] or readout rows [R*D].
  const T* diff(std::size_t u, std::size_t k, bool at_last) const {
    const Workspace& w = workspace_;
    const std::size_t full = B_ * P_ * D_, last = R_ * D_;
    if (u < w.n0 || state(u, k) == NodeState::clean) return (at_last ? delta_last_.data() + u * last : delta_.data() + u * full);
    const std::ptrdiff_t s = w.slot[(u - w.n0) * w.K + k];
    if (s < 0) return nullptr;
    return at_last ? w.diff_last.data() + static_cast<std::size_t>(s) * last : w.diff_full.data() + static_cast<std::size_t>(s) * full;
  }
  bool zero_diff(std::size_t u, std::size_t k) const { return u >= workspace_.n0 && state(u, k) == NodeState::source; }

  /// Port p's input in lanes [a, b): resid + the sum over each lane's patched edges u->p of
  /// diff(u). [b - a][rows * D] in buf, or, when none of these lanes patches p, resid's rows.
  /// Where most of the port's edges are patched (late in an ACDC pass), the sum is the lane's
  /// total over every upstream node minus the unpatched ones.
  const T* port_input(std::size_t p, std::size_t a, std::size_t b, std::vector<T>& buf) const {
    Workspace& w = workspace_;
    const Lanes& run = w.run;
    const bool at_last = run.last_rows;
    const std::size_t R = at_last ? R_ * D_ : B_ * P_ * D_;
    bool any = false;
    for (std::size_t k = a; k < b && !any; ++k) any = patches(k, p);
    if (!any) return run.resid.data() + a * R;
    // The ports of one layer's heads read the same upstream nodes: one total serves them all.
    const DownstreamPort& port = graph_.ports()[p];
    const std::size_t group = 1 + (port.kind == PortKind::Mlp || port.kind == PortKind::Logits ? p : ports_of(static_cast<std::size_t>(port.layer)));
    const std::vector<int>& in = graph_.edges_into(static_cast<int>(p));
    buf.resize((b - a) * R);
    w.total.resize(w.K * R);
    w.patched_upstream.assign(N_, 0);
    for (std::size_t k = a; k < b; ++k) {
      T* dst = buf.data() + (k - a) * R;
      Kernels::copy(R, run.resid.data() + k * R, dst);
      std::size_t patched = 0, unpatched = 0;  // nonzero diffs on each side
      bool all_kept = true;                    // every nonzero diff is at hand (a total needs them all)
      for (int e : in) {
        const std::size_t u = static_cast<std::size_t>(graph_.edges()[static_cast<std::size_t>(e)].upstream);
        w.patched_upstream[u] = flagged(k, e);
        if (zero_diff(u, k)) continue;
        (w.patched_upstream[u] ? patched : unpatched) += 1;
        all_kept = all_kept && diff(u, k, at_last);
      }
      if (patched == 0) continue;
      if (patched <= unpatched + 1 || !all_kept) {
        for (int e : in) {
          const std::size_t u = static_cast<std::size_t>(graph_.edges()[static_cast<std::size_t>(e)].upstream);
          if (!w.patched_upstream[u] || zero_diff(u, k)) continue;
          const T* d = diff(u, k, at_last);
          require(d != nullptr, "patched lanes: a patched edge reads a node whose diff was not kept");
          Kernels::axpy(R, T(1), d, dst);
        }
        continue;
      }
      T* total = w.total.data() + k * R;
      if (w.total_group[k] != group) {  // the lane's sum of every upstream node's diff  [R]
        Kernels::fill_zero(R, total);
        for (int e : in)
          if (const T* d = diff(static_cast<std::size_t>(graph_.edges()[static_cast<std::size_t>(e)].upstream), k, at_last))
            Kernels::axpy(R, T(1), d, total);
        w.total_group[k] = group;
      }
      Kernels::axpy(R, T(1), total, dst);
      for (int e : in) {
        const std::size_t u = static_cast<std::size_t>(graph_.edges()[static_cast<std::size_t>(e)].upstream);
        if (!w.patched_upstream[u])
          if (const T* d = diff(u, k, at_last)) Kernels::axpy(R, T(-1), d, dst);
      }
    }
    return buf.data();
  }

  /// Lane k's output of node u in this run: `computed` (lane k's computed rows) where it was
  /// computed, else the clean output or the source.
  const T* value(std::size_t u, std::size_t k, const T* computed, bool at_last) const {
    const std::size_t R = at_last ? R_ * D_ : B_ * P_ * D_;
    switch (state(u, k)) {
      case NodeState::clean: return (at_last ? clean_last_.data() : clean_.data()) + u * R;
      case NodeState::source: return (at_last ? source_last_.data() : source_.data()) + u * R;
      case NodeState::computed: break;
    }
    return computed;
  }

  /// Keeps lane k's diff src_u - out_u(run) where a patched edge reads it.
  void keep_diff(std::size_t u, std::size_t k, const T* out, bool at_last) const {
    Workspace& w = workspace_;
    const std::ptrdiff_t s = w.slot[(u - w.n0) * w.K + k];
    if (s < 0) return;
    const std::size_t full = B_ * P_ * D_, last = R_ * D_, i = static_cast<std::size_t>(s);
    if (at_last) {
      Kernels::subtract(last, source_last_.data() + u * last, out, w.diff_last.data() + i * last);
    } else {
      Kernels::subtract(full, source_.data() + u * full, out, w.diff_full.data() + i * full);
      gather(w.diff_full.data() + i * full, w.diff_last.data() + i * last);
    }
  }

  /// The lanes [a, b) that compute node u (b = a when none does).
  std::pair<std::size_t, std::size_t> computed_lanes(std::size_t u) const {
    std::size_t a = workspace_.K, b = 0;
    for (std::size_t k = 0; k < workspace_.K; ++k)
      if (state(u, k) == NodeState::computed) a = std::min(a, k), b = k + 1;
    return {std::min(a, b), b};
  }

  /// Every lane computes every head of layer l from the plain residual, and no lane keeps a head's diff.
  bool whole_attention(std::size_t l) const {
    const Workspace& w = workspace_;
    if (l == w.l0) return false;
    for (std::size_t h = 0; h < H_; ++h)
      for (std::size_t k = 0; k < w.K; ++k)
        if (state(node0(l) + h, k) != NodeState::computed || w.slot[(node0(l) + h - w.n0) * w.K + k] >= 0 || head_patched(k, l, h))
          return false;
    return true;
  }

  /// One lane's readout rows: [B*P*D] -> [R*D].
  void gather(const T* full, T* last) const { Kernels::gather_rows(R_, D_, task_->clean.readout.data(), full, last); }
  std::vector<T> gather_last(const T* nodes) const {  // [N, B*P*D] -> [N, R*D]
    std::vector<T> out(N_ * R_ * D_);
    for (std::size_t u = 0; u < N_; ++u) gather(nodes + u * B_ * P_ * D_, out.data() + u * R_ * D_);
    return out;
  }

  const M* model_;
  const PatchingTask<T>* task_;
  Graph graph_;
  std::size_t B_, P_, R_, D_, H_, L_, N_;  // R_: readout rows per lane
  std::vector<T> clean_, resid_;  // the clean run: [n_upstream, B*P*D], [2L + 1, B*P*D]
  std::vector<T> source_, delta_;  // what patched edges read, and source - clean output: [n_upstream, B*P*D]
  std::vector<T> clean_last_, source_last_, delta_last_;  // the same at the readout rows: [n_upstream, R*D]
  std::vector<int> edge_layer_;  // per edge: the layer of the port it points into (L for logits)
  std::vector<std::size_t> edge_reader_;  // per edge: the node that reads its port, N for the logits
  mutable Workspace workspace_;
};

}  // namespace circuitry
