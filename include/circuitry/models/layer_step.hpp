#pragma once
// One layer of the transformer, the one place above the components that knows the node layout
// (layer l's heads, then its MLP), where b_O goes (added with the heads' sum), the order of a
// parallel block and the last layer's readout-rows shortcut. Every forward pass is a driver that
// calls it once per layer:
//   Model::forward (models/model.hpp)         one lane, chained: the residual is a chain of
//                                             variables on the caller's context (with the tape,
//                                             hooks and the recordings EAP needs);
//   masked_forward (patching/masked_forward.hpp) one lane, chained, without a residual: every
//                                             port reads its own input from the io, on the tape;
//   run_with (patching/intervention.hpp)      one lane under an Intervention;
//   PatchedLanes (patching/patched_lanes.hpp) exact patching's and ACDC's K lanes (copies of a
//                                             batch stacked along the batch dimension).
// The last two run without gradient, with the residual in LaneRun::resid, added to in place,
// and the arena reused node by node.
//
// What each port reads and what becomes of each node's output is the driver's, through a LayerIo
// `io` (LayerIoBase gives the optional ones):
//   io.attention(l, run) -> HeadsPlan   head_by_head (chained: every head at once on the tape, each
//                                       q/k/v port from its own io.port_var); or whole: every lane computes every head of
//                                       layer l from the plain residual (one q|k|v GEMM), wanting each
//                                       head's output (whole_heads) or only their sum (whole_sum)
//   io.node_lanes(u) -> {a, b}          the lanes [a, b) that compute node u (a == b: none)
//   io.port_input(p, a, b, run)         port p's input in lanes [a, b): [b - a][rows, D]
//   io.node_value(u, k, computed, last) lane k's output of node u, given what was computed for it
//                                       (nullptr where lane k did not compute it); may keep or replace it
//   io.residual(stage, run)             the residual entering stage 2l (the layer) or 2l + 1 (its MLP)
//   io.port_var(p, n)                   chained without a residual: ports [p, p + n)'s inputs on the
//                                       tape, [n, rows, D] (optional)
//   io.node_var(u, n, v)                chained: the outputs of nodes [u, u + n) on the tape, [n, rows, D] (optional)
//   io.port_sink(p)                     where d metric / d input of ports p.. go on the tape (optional)
//   io.observe(l, point, v)             an activation at a hook point (optional)
//   io.attention_z(l, z)                the heads' mixed values of a whole_sum layer (optional)
// A layer with a norm after the heads' sum (config.post_attention_norm, Gemma) normalises the sum,
// and each head's node output is its share w * r_h * rstd(S) (DESIGN.md section 2): run head by
// head, the lanes that compute any head of the layer compute all of them, from their own ports.
#include <map>
#include <utility>
#include <vector>

#include "circuitry/models/batch.hpp"
#include "circuitry/models/config.hpp"
#include "circuitry/models/node_forward.hpp"
#include "circuitry/models/parameters.hpp"

namespace circuitry {

enum class HeadsPlan { head_by_head, whole_heads, whole_sum };

/// The activations a layer shows its driver, at TransformerLens' hook points (models/hooks.hpp).
enum class LayerPoint { resid_pre, qkv, pattern, z, attn_out, resid_mid, mlp_pre, mlp_post, mlp_out, resid_post };

/// The optional parts of a LayerIo, doing nothing.
template <class T>
struct LayerIoBase {
  ops::PortGradientSink<T> port_sink(std::size_t /*first_port*/) const { return {}; }
  Var<T> port_var(std::size_t /*first_port*/, std::size_t /*n*/) const { return {}; }
  void node_var(std::size_t /*first_node*/, std::size_t /*n*/, const Var<T>&) const {}
  void observe(std::size_t /*l*/, LayerPoint, const Var<T>&) const {}
  void attention_z(std::size_t /*l*/, const Var<T>& /*z*/) const {}
};

/// The lanes' state between layers, and the working memory of a layer step (kept between runs,
/// so that repeated runs do not fault in fresh pages).
template <class T, class B = CpuBackend>
struct LaneRun {
  std::size_t K = 1;
  bool last_rows = false;  // the residual holds each lane's readout rows only
  /// Chained: one lane whose residual is `x`, a new variable on the caller's context after each
  /// sum (what the tape's backward and the hooks need); with no x, no residual: every port reads
  /// io.port_var. Else the residual is `resid`.
  bool chained = false;
  Var<T> x;                                // [batch, pos, D], or [readout rows, D] once last_rows
  const ParamVars<T>* params = nullptr;    // the variables the layers read (a trainer's), else the model's
  std::vector<T> resid;    // [K][batch * pos * D], or [K][readout rows * D] once last_rows
  std::vector<T> acc;      // [K][rows * D] the heads' outputs plus b_O
  std::vector<T> shared;   // [rows * D] the sum of the heads whose output is the same in every lane
  std::vector<const T*> values;  // [K] one node's output in each lane
  std::vector<T> node;     // [lanes that compute it][rows * D] one head's output
  std::vector<T> heads;    // [H][K][rows * D] every head's output (whole_heads)
  std::vector<T> gathered;
  typename B::Arena arena;

  /// Layer l's key mask and the flat readout rows of n lanes of `batch`.
  template <class M>
  const ops::KeyMask& mask(const M& model, const Batch& batch, std::size_t n, std::size_t l) {
    auto [it, added] = masks_.try_emplace({n, model.config().window(l)});
    if (added) it->second = model.key_mask(batch, n, l);
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
      B::gather_rows(batch.readout.size(), D, batch.readout.data(), resid.data() + k * full, gathered.data() + k * last);
    resid.swap(gathered);
    last_rows = true;
  }

 private:
  std::map<std::pair<std::size_t, std::size_t>, ops::KeyMask> masks_;  // by (lanes, window)
  std::map<std::size_t, std::vector<std::size_t>> readout_;
};

/// Advances every lane of `run` through layer l. lean: the last layer of a run that wants only
/// the readout rows' logits: the heads' queries and everything after them run at those rows.
/// Unless run.chained, ctx is a context without tape over run.arena.
template <class Ctx, class M, class Io, class T = typename M::scalar>
void layer_step(const Ctx& ctx, const M& model, const Batch& batch, std::size_t l, bool lean,
                LaneRun<T, typename M::backend>& run, Io& io) {
  using Attn = typename M::attention;
  using Mlp = typename M::mlp;
  using Norm = typename M::norm;
  using Kernels = typename M::backend;
  constexpr bool has_mlp = M::architecture::has_mlp;
  const bool chained = run.chained;
  require(chained || (!Ctx::records && &ctx.arena() == &run.arena), "layer step: lanes run without tape on the run's arena");
  require(!(Ctx::records && lean), "layer step: a run with the tape has no readout-rows shortcut");
  const ModelConfig& c = model.config();
  const std::size_t K = run.K, B = batch.batch, P = batch.pos, D = c.n_embd, H = c.n_head, A = c.d_attn();
  const std::size_t lane_rows = lean ? batch.readout.size() : B * P, R = lane_rows * D;  // one lane's rows of a node's output
  const std::size_t first = first_node_of_layer(l, H, has_mlp), port0 = l * model.ports_per_layer();
  const LayerParams<T> params = (run.params ? *run.params : model.params()).layer(l);
  const bool post_norm = c.post_attention_norm;
  const T eps = static_cast<T>(c.layer_norm_epsilon);
  // The norm after the heads' sum, of the sum [rows, D] (on the tape where the run has one).
  auto post_norm_of_sum = [&](const Var<T>& sum) {
    return ops::norm_linear_ports<Norm>(ctx, sum, params["ln1_post.w"], params["ln1_post.b"], eps, nullptr, nullptr, ops::PortSplit::single());
  };
  // Lanes: the arena's buffers are reused by the next node. Chained: every value stays.
  auto next_node = [&] {
    if (!chained) run.arena.reset();
  };
  auto residual = [&] { return chained ? run.x : Var<T>{run.resid.data(), {K * B, P, D}, nullptr}; };  // before the shortcut
  // A layer the context's GradientRules detach (GradDrop) adds its outputs as constants.
  const bool detached = chained && ctx.rules().detaches(l);
  auto add_to_residual = [&](const Var<T>& y) {  // y: [K * rows, D]
    if (chained && !run.x.value) return;
    if (chained) run.x = ops::add(ctx, run.x, Var<T>{y.value, run.x.shape, detached ? nullptr : y.slot});
    else Kernels::axpy(K * R, T(1), y.value, run.resid.data());
  };
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

  io.observe(l, LayerPoint::resid_pre, residual());  // a hook may change it: recorded after
  io.residual(2 * l, run);
  if (!chained) run.acc.resize(K * R), run.shared.resize(R);
  const HeadsPlan plan = io.attention(l, run);
  require(!chained || (plan == HeadsPlan::whole_sum) == (run.x.value != nullptr),
          "layer step: a chained run sums its heads whole, or, without a residual, runs them head by head");
  Var<T> attn_out;  // [K*B, P, D], or [K*R, D] in a lean layer: the heads' outputs plus b_O
  if (plan != HeadsPlan::head_by_head) {
    next_node();
    Var<T> qkv = Attn::template qkv<Norm>(ctx, residual(), params, c, io.port_sink(port0));  // [K*B, P, 3A]
    io.observe(l, LayerPoint::qkv, qkv);
    qkv = Attn::rotate(ctx, qkv, c, model.rotary(l));  // [K*B, P, 3A]
    if (ctx.rules().scales_qkv())  // GIM's q/k/v gradient scales (ops/gradient_rules.hpp)
      qkv = ops::scale_gradient_blocks(ctx, qkv, {ctx.rules().q_scale, ctx.rules().k_scale, ctx.rules().v_scale});
    Var<T> z;                                          // [K*B, P, A], or [K*R, A] at the readout rows
    if (lean) {
      z = ctx.output({K * batch.readout.size(), A}, false);
      Kernels::attention_rows(AttentionShape{K * B, P, H, c.d_head(), Attn::scores(c)}, run.mask(model, batch, K, l),
                              run.readout(batch, K), qkv.value, z.value);
    } else {
      Var<T> pattern = Attn::pattern(ctx, qkv, c, run.mask(model, batch, K, l));  // [K*B, H, P, P]
      io.observe(l, LayerPoint::pattern, pattern);
      Var<T> mixed = Attn::mix(ctx, pattern, qkv, c);  // [K*B, P, H, dh]
      io.observe(l, LayerPoint::z, mixed);
      z = Var<T>{mixed.value, {K * B, P, A}, mixed.slot};
    }
    if (plan == HeadsPlan::whole_sum) {
      io.attention_z(l, z);
      attn_out = Attn::output(ctx, z, params);  // z W_O + b_O
      if (post_norm) attn_out = post_norm_of_sum(attn_out);
      if (!chained) {  // kept where the MLP's use of the arena cannot reach it
        Kernels::copy(K * R, attn_out.value, run.acc.data());
        attn_out = Var<T>{run.acc.data(), {K * lane_rows, D}, nullptr};
      }
    } else {
      run.heads.resize(H * K * R);
      Attn::template head_outputs<Kernels>(z.value, params["attn.W_O"].value, c, K * lane_rows, run.heads.data(), K * R, false);
      if (post_norm)  // every head's share, in place
        Kernels::post_norm_shares_forward(H, K * lane_rows, D, K * R, run.heads.data(), params["ln1_post.w"].value, eps,
                                          run.heads.data(), run.arena.template alloc<T>(K * lane_rows));
      for (std::size_t h = 0; h < H; ++h) add_head(first + h, 0, K, run.heads.data() + h * K * R);
    }
  } else if (chained) {  // every head from its own ports' inputs, each head's output apart
    Var<T> qkv = Attn::template qkv_each_port<Norm>(ctx, io.port_var(port0, 3 * H), params, c, B, P);  // [B, P, 3A]
    qkv = Attn::rotate(ctx, qkv, c, model.rotary(l));
    Var<T> mixed = Attn::mix(ctx, Attn::pattern(ctx, qkv, c, run.mask(model, batch, 1, l)), qkv, c);  // [B, P, H, dh]
    Var<T> heads = Attn::each_head_output(ctx, mixed, params, c);  // [H, B*P, D]
    io.node_var(first, H, post_norm ? ops::post_norm_shares(ctx, heads, params["ln1_post.w"], eps) : heads);
  } else if (post_norm) {  // the lanes that compute any head compute all of them, then their shares
    std::size_t a = K, b = 0;
    for (std::size_t h = 0; h < H; ++h)
      if (const auto [ha, hb] = io.node_lanes(first + h); ha < hb) a = std::min(a, ha), b = std::max(b, hb);
    if (a < b) {
      run.heads.resize(H * K * R);  // [H][K][rows * D]: lanes [a, b) filled
      const ops::KeyMask& mask = run.mask(model, batch, b - a, l);
      for (std::size_t h = 0; h < H; ++h) {
        next_node();
        const T* in[3];
        for (std::size_t j = 0; j < 3; ++j) in[j] = io.port_input(port0 + 3 * h + j, a, b, run);
        T* out = run.heads.data() + h * K * R + a * R;
        if (lean) head_output_rows(model, l, h, in[0], in[1], in[2], (b - a) * B, P, run.readout(batch, b - a), mask, run.arena, out);
        else head_output(model, l, h, in[0], in[1], in[2], (b - a) * B, P, mask, run.arena, out);
      }
      next_node();
      T* heads = run.heads.data() + a * R;
      Kernels::post_norm_shares_forward(H, (b - a) * lane_rows, D, K * R, heads, params["ln1_post.w"].value, eps, heads,
                                        run.arena.template alloc<T>((b - a) * lane_rows));
    }
    for (std::size_t h = 0; h < H; ++h) add_head(first + h, a, b, a < b ? run.heads.data() + h * K * R + a * R : nullptr);
  } else {
    for (std::size_t h = 0; h < H; ++h) {
      const std::size_t u = first + h;
      const auto [a, b] = io.node_lanes(u);
      if (a < b) {
        next_node();
        const T* in[3];
        for (std::size_t j = 0; j < 3; ++j) in[j] = io.port_input(port0 + 3 * h + j, a, b, run);
        run.node.resize((b - a) * R);
        const ops::KeyMask& mask = run.mask(model, batch, b - a, l);
        if (lean) head_output_rows(model, l, h, in[0], in[1], in[2], (b - a) * B, P, run.readout(batch, b - a), mask, run.arena, run.node.data());
        else head_output(model, l, h, in[0], in[1], in[2], (b - a) * B, P, mask, run.arena, run.node.data());
      }
      add_head(u, a, b, run.node.data());
    }
  }
  if (plan != HeadsPlan::whole_sum && !chained) {  // acc += shared, then b_O
    for (std::size_t k = 0; k < K; ++k) {
      if (!any_own) Kernels::copy(R, run.shared.data(), run.acc.data() + k * R);
      else if (any_shared) Kernels::axpy(R, T(1), run.shared.data(), run.acc.data() + k * R);
    }
    if (const Var<T>& b_o = params["attn.b_O"]; b_o.value) Kernels::add_broadcast(K * R, D, run.acc.data(), b_o.value, run.acc.data());
    attn_out = Var<T>{run.acc.data(), {K * lane_rows, D}, nullptr};
  }
  io.observe(l, LayerPoint::attn_out, attn_out);
  if (lean && !run.last_rows) {
    if (chained) run.x = ops::gather_rows(ctx, run.x, batch.readout), run.last_rows = true;  // [R, D]
    else run.keep_readout_rows(batch, D);
  }
  // The heads (and b_O) enter the residual before the MLP reads it, or, in a parallel block, after.
  if (!M::parallel || !has_mlp) {
    add_to_residual(attn_out);
    io.observe(l, LayerPoint::resid_mid, residual());
  }
  io.residual(2 * l + 1, run);
  if constexpr (has_mlp) {
    const std::size_t u = first + H;
    const auto [a, b] = io.node_lanes(u);
    Var<T> out;  // [(b - a) * rows, D] the MLP's output in lanes [a, b), with b_out
    if (a < b) {
      next_node();
      const Var<T> x = chained ? (run.x.value ? run.x : io.port_var(port0 + 3 * H, 1)) : Var<T>{const_cast<T*>(io.port_input(port0 + 3 * H, a, b, run)), {(b - a) * lane_rows, D}, nullptr};
      Var<T> pre = Mlp::template pre<Norm>(ctx, x, params, c, io.port_sink(port0 + 3 * H));  // [rows, d_mlp] (gated: 2 d_mlp)
      if (Mlp::gated && ctx.rules().scales_gated_mlp())  // GIM's gate/up gradient scales
        pre = ops::scale_gradient_blocks(ctx, pre, {ctx.rules().gate_scale, ctx.rules().up_scale});
      io.observe(l, LayerPoint::mlp_pre, pre);
      Var<T> post = Mlp::act(ctx, pre);  // [rows, d_mlp]
      io.observe(l, LayerPoint::mlp_post, post);
      out = Mlp::template output<Norm>(ctx, post, params, c);
      io.observe(l, LayerPoint::mlp_out, out);
    }
    if (M::parallel) add_to_residual(attn_out);
    if (chained) {
      io.node_var(u, 1, out);
      add_to_residual(out);
    } else {
      for (std::size_t k = 0; k < K; ++k) Kernels::axpy(R, T(1), lane_value(u, k, a, b, out.value), run.resid.data() + k * R);
    }
  }
  io.observe(l, LayerPoint::resid_post, residual());
}

}  // namespace circuitry
