#pragma once
// Patched runs that restart at a receiver's stage, many at once as "lanes" (ACDC's inner
// loop; DESIGN.md section 2). When every patched edge points into a port of layer l or later,
// the residual stream before layer l is the clean run's, so a run restarts from the cached
// clean residual at layer l and only layers l.. are recomputed:
//   ports of layer l..L-1 read   resid_run + sum_{u->p patched} (src_u - out_u(run)),
// where out_u(run) is the clean output for every node before layer l (shared by all lanes)
// and the lane's own output after it. Lanes are stacked along the batch dimension
// ([lane, batch, pos, d_model]), each with its own set of patched edges, so the node
// forwards run as one big batch. Only the last positions' logits are wanted, so the last
// layer runs its queries, head outputs and MLP on the last rows only, and the logits port
// reads just those rows. A node whose every path to the logits is patched in a lane cannot change
// that lane's logits: it takes its source there and, when no lane needs it, is not computed
// (ACDC, which removes most edges, then recomputes only the few nodes its circuit still holds).
#include <cstdint>
#include <vector>

#include "circuitry/patching/edge_patching.hpp"

namespace circuitry {

template <class M, class T = typename M::scalar>
class StagedRuns {
  using Kernels = DefaultBackend;

 public:
  /// source: what patched edges read, per upstream node [n_upstream, batch, pos, d_model]
  /// (ablation_source); the task supplies the clean input.
  StagedRuns(const M& model, const PatchingTask<T>& task, const std::vector<T>& source)
      : model_(&model), task_(&task), graph_(model.graph()), B_(task.clean.batch), P_(task.clean.pos),
        R_(task.clean.readout.size()), D_(model.config().n_embd), L_(model.config().n_layer), N_(model.n_upstream()) {
    const std::size_t BPD = B_ * P_ * D_;
    require(source.size() == N_ * BPD, "staged runs: the ablation source has the wrong size");
    RecordedRun<T> clean = record_run(model, task.clean);
    clean_out_ = std::move(clean.node_outputs);
    resid_ = std::move(clean.residuals);
    source_ = source;
    source_last_ = gather_last(source_.data(), N_);
    delta_.resize(N_ * BPD);  // src_u - out_u(clean)  [n_upstream, B*P*D]
    Kernels::subtract(delta_.size(), source.data(), clean_out_.data(), delta_.data());
    delta_last_ = gather_last(delta_.data(), N_);
    edge_layer_.resize(graph_.n_edges());
    edge_reader_.resize(graph_.n_edges());
    for (std::size_t e = 0; e < graph_.n_edges(); ++e) {
      const DownstreamPort& p = graph_.ports()[static_cast<std::size_t>(graph_.edges()[e].port)];
      edge_layer_[e] = p.layer;
      edge_reader_[e] = p.kind == PortKind::Logits ? -1
                        : p.kind == PortKind::Mlp  ? graph_.mlp_node(static_cast<std::size_t>(p.layer))
                                                   : graph_.head_node(static_cast<std::size_t>(p.layer), static_cast<std::size_t>(p.head));
    }
  }

  const Graph& graph() const { return graph_; }

  /// Logits [lanes * readout rows, vocab] of one patched run per lane. Every edge flagged in a lane's
  /// mask (one flag per edge) must point into a port of `first_port`'s layer or later.
  std::vector<T> run(int first_port, const std::vector<const std::uint8_t*>& lanes) const {
    // BD: one lane's readout rows (the last positions, or every position after the first) [R, D]
    const std::size_t K = lanes.size(), BPD = B_ * P_ * D_, BD = R_ * D_, KB = K * B_, KR = K * R_;
    const auto& port = graph_.ports()[static_cast<std::size_t>(first_port)];
    const std::size_t l0 = static_cast<std::size_t>(port.layer), H = model_->config().n_head;
    const std::size_t ppl = model_->ports_per_layer();
    // The nodes before layer l0: clean in every lane.
    const std::size_t n0 = first_node_of_layer(l0, H, M::architecture::has_mlp);
    for (const std::uint8_t* mask : lanes)
      for (std::size_t e = 0; e < graph_.n_edges(); ++e)
        if (mask[e] && edge_layer_[e] < port.layer)
          throw Error("staged runs: the patched edge " + graph_.edges()[e].name + " points into a port before the restart stage");

    // The lanes' diffs src_u - out_u(run) of nodes from layer l0 on, at every row and at the
    // last rows only: [node - n0][lane][B*P*D] and [node - n0][lane][R*D].
    const std::size_t n_late = N_ - n0;
    Workspace& w = workspace_;
    w.late_full.resize(n_late * K * BPD), w.late_last.resize(n_late * K * BD);
    // resid [K*B, P, D] (all rows) until the last layer's heads, then [K*R, D] (readout rows).
    w.resid.resize(K * BPD);
    for (std::size_t k = 0; k < K; ++k)
      Kernels::copy(BPD, resid_.data() + 2 * std::min(l0, L_) * BPD, w.resid.data() + k * BPD);
    bool last_rows = false;

    // Which nodes from layer l0 on a lane's logits depend on: a node is needed when one of its
    // edges is not patched in the lane and leads to the logits or to a needed node. Where a
    // node is not needed, every reader that matters reads its source (its edges there are
    // patched), so the lane takes the source as the node's output: the residual then holds
    // src_u and every patched reader gets src_u + (src_u - src_u), as patching defines. A node
    // no lane needs is not computed at all; late in an ACDC pass, with most edges removed, that
    // is most of the layers above the receiver.   needed: [node - n0][lane]
    std::vector<std::uint8_t>& needed = w.needed;
    needed.assign(n_late * K, 0);
    for (std::size_t u = N_; u-- > n0;)
      for (int e : graph_.edges_out_of(static_cast<int>(u))) {
        const int reader = edge_reader_[static_cast<std::size_t>(e)];
        for (std::size_t k = 0; k < K; ++k)
          if (!lanes[k][static_cast<std::size_t>(e)] && (reader < 0 || needed[(static_cast<std::size_t>(reader) - n0) * K + k]))
            needed[(u - n0) * K + k] = 1;
      }
    auto needed_by_some_lane = [&](std::size_t u) {
      for (std::size_t k = 0; k < K; ++k)
        if (needed[(u - n0) * K + k]) return true;
      return false;
    };
    // Node u's output in the lanes that do not need it: its source. out [K][B*P*D], or [K][R*D] at the readout rows.
    auto source_where_not_needed = [&](std::size_t u, T* out, bool at_last) {
      const std::size_t R = at_last ? BD : BPD;
      const T* src = at_last ? source_last_.data() + u * BD : source_.data() + u * BPD;
      for (std::size_t k = 0; k < K; ++k)
        if (!needed[(u - n0) * K + k]) Kernels::copy(R, src, out + k * R);
    };

    // The diff src_u - out_u(run) of a node that takes its source in a lane is zero: not stored, not summed.
    auto zero_diff = [&](std::size_t u, std::size_t k) { return u >= n0 && !needed[(u - n0) * K + k]; };
    auto diff_row = [&](std::size_t u, std::size_t k, bool at_last) -> const T* {
      if (u < n0) return at_last ? delta_last_.data() + u * BD : delta_.data() + u * BPD;
      return at_last ? w.late_last.data() + ((u - n0) * K + k) * BD : w.late_full.data() + ((u - n0) * K + k) * BPD;
    };
    auto patched_in = [&](std::size_t k, std::size_t p) {
      for (int e : graph_.edges_into(static_cast<int>(p)))
        if (lanes[k][static_cast<std::size_t>(e)]) return true;
      return false;
    };
    // w.inputs [port][lane][R] = resid + sum over the lane's patched edges u->p of diff_u, for
    // ports first..first+n of one stage, at all rows (R = B*P*D) or at the readout rows (R = R_*D).
    // When most of a port's edges are patched (ACDC removes most), the sum is taken as the
    // lane's total over all upstream nodes minus the unpatched ones. Returns false when no
    // lane patches any of these ports (they all read resid).
    auto port_inputs = [&](std::size_t first, std::size_t n, bool at_last, const std::vector<std::uint8_t>& wanted) {
      bool any = false;
      for (std::size_t k = 0; k < K && !any; ++k)
        for (std::size_t i = 0; i < n && !any; ++i) any = wanted[i] && patched_in(k, first + i);
      if (!any) return false;
      const std::size_t R = at_last ? BD : BPD, U = graph_.edges_into(static_cast<int>(first)).size();
      w.inputs.resize(n * K * R);
      w.total.resize(R);
      std::vector<std::uint8_t> upstream_patched(U);
      for (std::size_t k = 0; k < K; ++k) {
        bool have_total = false;
        for (std::size_t i = 0; i < n; ++i) {
          if (!wanted[i]) continue;  // a port of a node no lane needs
          T* dst = w.inputs.data() + (i * K + k) * R;
          if (at_last && !last_rows) gather_rows(w.resid.data() + k * BPD, dst);
          else Kernels::copy(R, w.resid.data() + k * R, dst);
          std::size_t patched_diffs = 0, unpatched_diffs = 0;  // the nonzero diffs on each side
          for (std::size_t u = 0; u < U; ++u) {
            const int e = graph_.edge_index(static_cast<int>(u), static_cast<int>(first + i));
            upstream_patched[u] = lanes[k][static_cast<std::size_t>(e)];
            if (zero_diff(u, k)) continue;
            (upstream_patched[u] ? patched_diffs : unpatched_diffs) += 1;
          }
          if (patched_diffs == 0) continue;
          if (patched_diffs <= unpatched_diffs + 1) {
            for (std::size_t u = 0; u < U; ++u)
              if (upstream_patched[u] && !zero_diff(u, k)) Kernels::axpy(R, T(1), diff_row(u, k, at_last), dst);
            continue;
          }
          if (!have_total) {  // the lane's sum of every upstream node's diff  [R]
            Kernels::fill_zero(R, w.total.data());
            for (std::size_t u = 0; u < U; ++u)
              if (!zero_diff(u, k)) Kernels::axpy(R, T(1), diff_row(u, k, at_last), w.total.data());
            have_total = true;
          }
          Kernels::axpy(R, T(1), w.total.data(), dst);
          for (std::size_t u = 0; u < U; ++u)
            if (!upstream_patched[u] && !zero_diff(u, k)) Kernels::axpy(R, T(-1), diff_row(u, k, at_last), dst);
        }
      }
      return true;
    };
    // Records node u's output in this run (out [K, B*P*D], or [K, B*D] at the readout rows) as diffs.
    auto record = [&](std::size_t u, const T* out, bool at_last) {
      const std::size_t j = u - n0;
      for (std::size_t k = 0; k < K; ++k) {
        if (zero_diff(u, k)) continue;
        T* last = w.late_last.data() + (j * K + k) * BD;
        if (at_last) {
          Kernels::subtract(BD, source_last_.data() + u * BD, out + k * BD, last);
        } else {
          T* full = w.late_full.data() + (j * K + k) * BPD;
          Kernels::subtract(BPD, source_.data() + u * BPD, out + k * BPD, full);
          gather_rows(full, last);
        }
      }
    };

    const ops::KeyMask mask = model_->key_mask(task_->clean, K);  // K lanes of the task's batch
    for (std::size_t l = l0; l < L_; ++l) {
      w.arena.reset();
      const Var<T>& b_o = model_->params().layer(l)["attn.b_O"];  // [D] or absent
      const std::size_t node0 = first_node_of_layer(l, H, M::architecture::has_mlp), qkv0 = l * ppl;
      const bool lean = l + 1 == L_;  // the last layer: attention, heads and MLP at the readout rows
      const std::size_t R = lean ? BD : BPD;
      // ---- heads: port inputs [3H][K][B*P*D] where some lane patches, else the residual ----
      w.wanted.assign(3 * H, 0);
      for (std::size_t h = 0; h < H; ++h) w.wanted[3 * h] = w.wanted[3 * h + 1] = w.wanted[3 * h + 2] = needed_by_some_lane(node0 + h);
      const bool patched = port_inputs(qkv0, 3 * H, false, w.wanted);
      if (patched) w.head_in.swap(w.inputs);
      w.node.resize(H * K * R);  // [H][K][R]
      for (std::size_t h = 0; h < H; ++h) {
        T* out = w.node.data() + h * K * R;
        bool changed = l > l0;  // in the restart layer a head without patched ports is clean
        for (std::size_t k = 0; k < K && !changed; ++k)
          for (std::size_t j = 0; j < 3 && !changed; ++j) changed = patched_in(k, qkv0 + 3 * h + j);
        if (!changed) {
          const T* clean = clean_out_.data() + (node0 + h) * BPD;
          for (std::size_t k = 0; k < K; ++k)
            if (lean) gather_rows(clean, out + k * BD);
            else Kernels::copy(BPD, clean, out + k * BPD);
        } else if (w.wanted[3 * h]) {
          const T* in[3];
          for (std::size_t j = 0; j < 3; ++j) in[j] = patched ? w.head_in.data() + (3 * h + j) * K * BPD : w.resid.data();
          // Queries are projected at every row even in the last layer (the packed q | k | v kernel).
          if (lean) head_output_rows(*model_, l, h, in[0], in[1], in[2], KB, P_, lane_readout_rows(K), mask, w.arena, out);
          else head_output(*model_, l, h, in[0], in[1], in[2], KB, P_, mask, w.arena, out);
        }
        source_where_not_needed(node0 + h, out, lean);
      }
      if (lean) {  // from here on only the last rows
        w.gathered.resize(K * BD);
        for (std::size_t k = 0; k < K; ++k) gather_rows(w.resid.data() + k * BPD, w.gathered.data() + k * BD);
        w.resid.swap(w.gathered);
        last_rows = true;
      }
      for (std::size_t h = 0; h < H; ++h) record(node0 + h, w.node.data() + h * K * R, lean);
      // The heads (and b_O) enter the residual before the MLP reads it, or, in a parallel block, after.
      auto add_heads = [&] {
        for (std::size_t h = 0; h < H; ++h) Kernels::axpy(K * R, T(1), w.node.data() + h * K * R, w.resid.data());
        if (b_o.value) Kernels::add_broadcast(K * R, D_, w.resid.data(), b_o.value, w.resid.data());
      };
      if (!M::parallel) add_heads();
      // ---- MLP ----
      if constexpr (M::architecture::has_mlp) {
        w.mlp.resize(K * R);
        w.wanted.assign(1, needed_by_some_lane(node0 + H));
        if (w.wanted[0]) {
          const T* x = port_inputs(qkv0 + 3 * H, 1, lean, w.wanted) ? w.inputs.data() : w.resid.data();
          mlp_output(*model_, l, x, lean ? KR : KB * P_, w.arena, w.mlp.data());
        }
        source_where_not_needed(node0 + H, w.mlp.data(), lean);
        if (M::parallel) add_heads();
        Kernels::axpy(K * R, T(1), w.mlp.data(), w.resid.data());
        record(node0 + H, w.mlp.data(), lean);
      }
    }
    // ---- logits: the final norm's input at the readout rows ----
    const std::size_t logits_port = static_cast<std::size_t>(graph_.logits_port());
    const T* x = nullptr;
    w.wanted.assign(1, 1);
    if (port_inputs(logits_port, 1, true, w.wanted)) {
      x = w.inputs.data();
    } else if (last_rows) {
      x = w.resid.data();
    } else {
      w.gathered.resize(K * BD);
      for (std::size_t k = 0; k < K; ++k) gather_rows(w.resid.data() + k * BPD, w.gathered.data() + k * BD);
      x = w.gathered.data();
    }
    w.arena.reset();
    std::vector<std::size_t> rows(KR);
    for (std::size_t i = 0; i < KR; ++i) rows[i] = i;
    return logits_from_residual(*model_, x, KR, 1, rows, w.arena);
  }

 private:
  /// The readout rows of one lane: [B*P*D] -> [R*D].
  void gather_rows(const T* full, T* last) const {
    Kernels::gather_rows(R_, D_, task_->clean.readout.data(), full, last);
  }
  std::vector<T> gather_last(const T* nodes, std::size_t n) const {  // [n, B*P*D] -> [n, R*D]
    std::vector<T> out(n * R_ * D_);
    for (std::size_t u = 0; u < n; ++u) gather_rows(nodes + u * B_ * P_ * D_, out.data() + u * R_ * D_);
    return out;
  }
  /// Flat readout-row indices of K lanes of the task's batch.
  std::vector<std::size_t> lane_readout_rows(std::size_t K) const { return task_->clean.lanes(K).readout; }

  const M* model_;
  const PatchingTask<T>* task_;
  Graph graph_;
  std::size_t B_, P_, R_, D_, L_, N_;  // R_: readout rows per lane
  std::vector<T> clean_out_, resid_;     // the clean run: [n_upstream, B*P*D], [2L + 1, B*P*D]
  std::vector<T> source_, source_last_;  // what patched edges read: [n_upstream, B*P*D], [n_upstream, B*D]
  std::vector<T> delta_, delta_last_;    // source - clean output, the same two layouts
  std::vector<int> edge_layer_;          // per edge: the layer of the port it points into (L for logits)
  std::vector<int> edge_reader_;         // per edge: the upstream node that reads its port, -1 for logits
  /// Buffers of run(), kept between runs so that repeated runs do not fault in fresh pages.
  struct Workspace {
    Arena arena;
    std::vector<T> late_full, late_last, resid, inputs, head_in, node, mlp, gathered, total;
    std::vector<std::uint8_t> needed, wanted;
  };
  mutable Workspace workspace_;
};

}  // namespace circuitry
