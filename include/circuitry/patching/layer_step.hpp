#pragma once
// One layer of the transformer for K lanes (copies of a batch stacked along the batch
// dimension) of a run without gradient. It is the one place above the components that knows
// the node layout (layer l's heads, then its MLP), where b_O goes, the order of a parallel
// block and the last layer's readout-rows shortcut. What each port reads and what becomes of
// each node's output is its driver's, through a LayerIo:
//   run_with (patching/intervention.hpp)      one lane: an Intervention's port inputs and node outputs;
//   PatchedLanes (patching/patched_lanes.hpp) exact patching's and ACDC's lanes.
// Model::forward (models/model.hpp) is the driver with the tape.
//
// A LayerIo `io` answers:
//   io.attention(l, run) -> HeadsPlan   head_by_head; or whole: every lane computes every head of
//                                       layer l from the plain residual (one q|k|v GEMM), wanting each
//                                       head's output (whole_heads) or only their sum (whole_sum)
//   io.node_lanes(u) -> {a, b}          the lanes [a, b) that compute node u (a == b: none)
//   io.port_input(p, a, b, run)         port p's input in lanes [a, b): [b - a][rows, D]
//   io.node_value(u, k, computed, last) lane k's output of node u, given what was computed for it
//                                       (nullptr where lane k did not compute it); may keep or replace it
//   io.residual(stage, run)             the residual entering stage 2l (the layer) or 2l + 1 (its MLP)
#include <map>
#include <utility>
#include <vector>

#include "circuitry/models/node_forward.hpp"

namespace circuitry {

enum class HeadsPlan { head_by_head, whole_heads, whole_sum };

/// The lanes' state between layers, and the working memory of a layer step (kept between runs,
/// so that repeated runs do not fault in fresh pages).
template <class T>
struct LaneRun {
  std::size_t K = 1;
  bool last_rows = false;  // resid holds each lane's readout rows only
  std::vector<T> resid;    // [K][batch * pos * D], or [K][readout rows * D] once last_rows
  std::vector<T> acc;      // [K][rows * D] the heads' outputs plus b_O
  std::vector<T> shared;   // [rows * D] the sum of the heads whose output is the same in every lane
  std::vector<const T*> values;  // [K] one node's output in each lane
  std::vector<T> node;     // [lanes that compute it][rows * D] one node's output
  std::vector<T> heads;    // [H][K][rows * D] every head's output (whole_heads)
  std::vector<T> gathered;
  Arena arena;

  /// The key mask and the flat readout rows of n lanes of `batch`.
  template <class M>
  const ops::KeyMask& mask(const M& model, const Batch& batch, std::size_t n) {
    auto [it, added] = masks_.try_emplace(n);
    if (added) it->second = model.key_mask(batch, n);
    return it->second;
  }
  const std::vector<std::size_t>& readout(const Batch& batch, std::size_t n) {
    auto [it, added] = readout_.try_emplace(n);
    if (added) it->second = batch.lanes(n).readout;
    return it->second;
  }
  /// From here on each lane's readout rows only: [K][B*P*D] -> [K][R*D].
  void keep_readout_rows(const Batch& batch, std::size_t D) {
    const std::size_t full = batch.rows() * D, last = batch.readout.size() * D;
    gathered.resize(K * last);
    for (std::size_t k = 0; k < K; ++k)
      DefaultBackend::gather_rows(batch.readout.size(), D, batch.readout.data(), resid.data() + k * full, gathered.data() + k * last);
    resid.swap(gathered);
    last_rows = true;
  }

 private:
  std::map<std::size_t, ops::KeyMask> masks_;
  std::map<std::size_t, std::vector<std::size_t>> readout_;
};

/// Advances every lane of `run` through layer l. lean: the last layer of a run that wants only
/// the readout rows' logits: the heads' queries and everything after them run at those rows.
template <class M, class Io, class T = typename M::scalar>
void layer_step(const M& model, const Batch& batch, std::size_t l, bool lean, LaneRun<T>& run, Io& io) {
  using Attn = typename M::attention;
  using Kernels = DefaultBackend;
  constexpr bool has_mlp = M::architecture::has_mlp;
  const ModelConfig& c = model.config();
  const std::size_t K = run.K, B = batch.batch, P = batch.pos, D = c.n_embd, H = c.n_head, A = c.d_attn();
  const std::size_t R = (lean ? batch.readout.size() : B * P) * D;  // one lane's rows of a node's output
  const std::size_t first = first_node_of_layer(l, H, has_mlp), port0 = l * model.ports_per_layer();
  const LayerParams<T> params = model.params().layer(l);
  auto lane_value = [&](std::size_t u, std::size_t k, std::size_t a, std::size_t b, const T* computed) {
    return io.node_value(u, k, a <= k && k < b ? computed + (k - a) * R : nullptr, lean);
  };
  // A head whose output is the same buffer in every lane (clean or source in all of them, or a
  // run of one lane) is summed once into `shared`; the others lane by lane into acc, each in
  // head order; acc += shared at the end.
  bool any_shared = false, any_own = false;
  auto add_head = [&](std::size_t u, std::size_t a, std::size_t b, const T* computed) {
    run.values.resize(K);
    bool same = true;
    for (std::size_t k = 0; k < K; ++k) same = (run.values[k] = lane_value(u, k, a, b, computed)) == run.values[0] && same;
    if (same) {
      if (any_shared) Kernels::axpy(R, T(1), run.values[0], run.shared.data());
      else Kernels::copy(R, run.values[0], run.shared.data());
      any_shared = true;
      return;
    }
    for (std::size_t k = 0; k < K; ++k)
      if (any_own) Kernels::axpy(R, T(1), run.values[k], run.acc.data() + k * R);
      else Kernels::copy(R, run.values[k], run.acc.data() + k * R);
    any_own = true;
  };

  io.residual(2 * l, run);
  run.acc.resize(K * R), run.shared.resize(R);
  const HeadsPlan plan = io.attention(l, run);
  if (plan != HeadsPlan::head_by_head) {
    run.arena.reset();
    Context<T, false> ctx(run.arena);
    Var<T> qkv = Attn::template qkv<typename M::norm>(ctx, Var<T>{run.resid.data(), {K * B, P, D}, nullptr}, params, c);
    qkv = Attn::rotate(ctx, qkv, c, model.rotary());  // [K*B, P, 3A]
    Var<T> z;                                          // [K*B, P, A], or [K*R, A] at the readout rows
    if (lean) {
      z = ctx.output({K * batch.readout.size(), A}, false);
      Kernels::attention_rows(AttentionShape{K * B, P, H, c.d_head()}, run.mask(model, batch, K), run.readout(batch, K),
                              qkv.value, z.value);
    } else {
      Var<T> mixed = Attn::mix(ctx, Attn::pattern(ctx, qkv, c, run.mask(model, batch, K)), qkv, c);  // [K*B, P, H, dh]
      z = Var<T>{mixed.value, {K * B, P, A}, nullptr};
    }
    if (plan == HeadsPlan::whole_sum) {
      Kernels::copy(K * R, Attn::output(ctx, z, params).value, run.acc.data());  // z W_O + b_O
    } else {
      run.heads.resize(H * K * R);
      Attn::head_outputs(z.value, params["attn.W_O"].value, c, K * R / D, run.heads.data(), K * R, false);
      for (std::size_t h = 0; h < H; ++h) add_head(first + h, 0, K, run.heads.data() + h * K * R);
    }
  } else {
    for (std::size_t h = 0; h < H; ++h) {
      const std::size_t u = first + h;
      const auto [a, b] = io.node_lanes(u);
      if (a < b) {
        run.arena.reset();
        const T* in[3];
        for (std::size_t j = 0; j < 3; ++j) in[j] = io.port_input(port0 + 3 * h + j, a, b, run);
        run.node.resize((b - a) * R);
        const ops::KeyMask& mask = run.mask(model, batch, b - a);
        if (lean) head_output_rows(model, l, h, in[0], in[1], in[2], (b - a) * B, P, run.readout(batch, b - a), mask, run.arena, run.node.data());
        else head_output(model, l, h, in[0], in[1], in[2], (b - a) * B, P, mask, run.arena, run.node.data());
      }
      add_head(u, a, b, run.node.data());
    }
  }
  if (plan != HeadsPlan::whole_sum) {  // acc += shared, then b_O
    for (std::size_t k = 0; k < K; ++k) {
      if (!any_own) Kernels::copy(R, run.shared.data(), run.acc.data() + k * R);
      else if (any_shared) Kernels::axpy(R, T(1), run.shared.data(), run.acc.data() + k * R);
    }
    if (const Var<T>& b_o = params["attn.b_O"]; b_o.value) Kernels::add_broadcast(K * R, D, run.acc.data(), b_o.value, run.acc.data());
  }
  if (lean && !run.last_rows) run.keep_readout_rows(batch, D);
  // The heads (and b_O) enter the residual before the MLP reads it, or, in a parallel block, after.
  if (!M::parallel || !has_mlp) Kernels::axpy(K * R, T(1), run.acc.data(), run.resid.data());
  io.residual(2 * l + 1, run);
  if constexpr (has_mlp) {
    const std::size_t u = first + H;
    const auto [a, b] = io.node_lanes(u);
    if (a < b) {
      run.arena.reset();
      const T* x = io.port_input(port0 + 3 * H, a, b, run);
      run.node.resize((b - a) * R);
      mlp_output(model, l, x, (b - a) * R / D, run.arena, run.node.data());
    }
    if (M::parallel) Kernels::axpy(K * R, T(1), run.acc.data(), run.resid.data());
    for (std::size_t k = 0; k < K; ++k) Kernels::axpy(R, T(1), lane_value(u, k, a, b, run.node.data()), run.resid.data() + k * R);
  }
}

}  // namespace circuitry
