#pragma once
// A forward pass in the residual-stream decomposition, where an Intervention decides what
// each downstream port reads and may replace any node's output. Every kind of patching is
// an Intervention: edge patching and circuit evaluation (patching/edge_patching.hpp), both
// runs of path patching (patching/path_patching.hpp). Runs without gradient; a layer whose
// ports all read the ordinary residual uses the fused fast path.
#include <cstring>
#include <vector>

#include "circuitry/graph/graph.hpp"
#include "circuitry/models/node_forward.hpp"

namespace circuitry {

template <class T>
class Intervention {
 public:
  virtual ~Intervention() = default;
  /// Ports [first, first + n) of one stage (a layer's q/k/v ports, an MLP input, or logits)
  /// are about to read `resid` [B*P*D]; `outputs` [n_upstream, B*P*D] holds this run's node
  /// outputs so far. Return false to let them read `resid`, or write each port's input into
  /// `inputs` [n, B*P*D] and return true.
  virtual bool port_inputs(std::size_t /*first*/, std::size_t /*n*/, const T* /*resid*/, const T* /*outputs*/, T* /*inputs*/) {
    return false;
  }
  /// May replace `value` [B*P*D], node `node`'s output in this run, before it enters the residual.
  virtual void node_output(std::size_t /*node*/, const T* /*outputs*/, T* /*value*/) {}
};

/// One run's results, and its working memory: run_with on the same object again reuses every
/// buffer, so a loop of runs (a faithfulness curve, a sweep of circuits) touches fresh memory
/// only once.
template <class T>
struct InterventionRun {
  std::vector<T> logits;          // [readout rows, vocab] (each sequence's last position in mode last)
  AlignedVector<T> node_outputs;  // [n_upstream, batch, pos, d_model]
  AlignedVector<T> residuals;     // [2L + 1, batch, pos, d_model] the ordinary residual at every stage
  // working memory
  AlignedVector<T> resid;         // [batch, pos, d_model] the running residual stream
  AlignedVector<T> ports;         // [3 * n_head, batch, pos, d_model] one stage's port inputs
  Arena arena;
};

/// Runs `batch` under `iv` into `run`, reusing its buffers.
template <class M, class T = typename M::scalar>
void run_with(const M& model, const Batch& batch, Intervention<T>& iv, InterventionRun<T>& run) {
  using Arch = typename M::architecture;
  using Attn = typename M::attention;
  using Kernels = DefaultBackend;
  const auto& c = model.config();
  const std::size_t B = batch.batch, P = batch.pos, D = c.n_embd, H = c.n_head, L = c.n_layer;
  const std::size_t BPD = B * P * D, ppl = model.ports_per_layer();
  require(P <= c.n_positions, "sequence of " + std::to_string(P) + " tokens is longer than the context (n_positions = " +
                                  std::to_string(c.n_positions) + ")");
  // Every element of these is written below before it is read.
  run.node_outputs.resize(model.n_upstream() * BPD);
  run.residuals.resize(residual_stages(L) * BPD);
  run.resid.resize(BPD);
  run.ports.resize(3 * H * BPD);
  T* outs = run.node_outputs.data();
  AlignedVector<T>& resid = run.resid;
  AlignedVector<T>& ports = run.ports;
  Arena& arena = run.arena;
  arena.reset();
  Context<T, false> ctx(arena);
  const ParamVars<T>& params = model.params();
  const ops::KeyMask mask = model.key_mask(batch);

  {  // input node
    Var<T> x = Arch::embed::input(ctx, params, batch, [](const std::string&, const Var<T>&) {});  // [B, P, D]
    Kernels::copy(BPD, x.value, outs);
    iv.node_output(0, outs, outs);
    Kernels::copy(BPD, outs, resid.data());
  }
  auto add = [&](std::size_t node) {  // a node's output enters the residual stream
    Kernels::axpy(BPD, T(1), outs + node * BPD, resid.data());
  };
  for (std::size_t l = 0; l < L; ++l) {
    arena.reset();
    const LayerParams<T> w = params.layer(l);
    const std::size_t node0 = first_node_of_layer(l, H, Arch::has_mlp);
    Kernels::copy(BPD, resid.data(), run.residuals.data() + 2 * l * BPD);
    if (iv.port_inputs(l * ppl, 3 * H, resid.data(), outs, ports.data())) {
      for (std::size_t h = 0; h < H; ++h) {
        const T* in = ports.data() + 3 * h * BPD;
        head_output(model, l, h, in, in + BPD, in + 2 * BPD, B, P, mask, arena, outs + (node0 + h) * BPD);
      }
    } else {  // every port reads the ordinary residual: the whole layer at once
      Var<T> qkv = Attn::template qkv<typename M::norm>(ctx, Var<T>{resid.data(), {B, P, D}, nullptr}, w, c);  // [B, P, 3A]
      qkv = Attn::rotate(ctx, qkv, c, model.rotary());
      Var<T> z = Attn::mix(ctx, Attn::pattern(ctx, qkv, c, mask), qkv, c);  // [B, P, H, dh]
      Attn::head_outputs(z.value, w["attn.W_O"].value, c, B * P, outs + node0 * BPD, BPD, false);
    }
    for (std::size_t h = 0; h < H; ++h) iv.node_output(node0 + h, outs, outs + (node0 + h) * BPD);
    // The heads (and b_O) enter the residual before the MLP reads it, or, in a parallel block, after.
    auto add_heads = [&] {
      for (std::size_t h = 0; h < H; ++h) add(node0 + h);
      if (const Var<T>& b_o = w["attn.b_O"]; b_o.value)
        Kernels::add_broadcast(BPD, D, resid.data(), b_o.value, resid.data());
    };
    if (!M::parallel) add_heads();
    Kernels::copy(BPD, resid.data(), run.residuals.data() + (2 * l + 1) * BPD);
    if constexpr (Arch::has_mlp) {
      const T* x = iv.port_inputs(l * ppl + 3 * H, 1, resid.data(), outs, ports.data()) ? ports.data() : resid.data();
      mlp_output(model, l, x, B * P, arena, outs + (node0 + H) * BPD);
      iv.node_output(node0 + H, outs, outs + (node0 + H) * BPD);
      if (M::parallel) add_heads();
      add(node0 + H);
    }
  }
  Kernels::copy(BPD, resid.data(), run.residuals.data() + 2 * L * BPD);
  const T* x = iv.port_inputs(L * ppl, 1, resid.data(), outs, ports.data()) ? ports.data() : resid.data();
  arena.reset();
  run.logits = logits_from_residual(model, x, B, P, batch.readout, arena);
}

template <class M, class T = typename M::scalar>
InterventionRun<T> run_with(const M& model, const Batch& batch, Intervention<T>& iv) {
  InterventionRun<T> run;
  run_with(model, batch, iv, run);
  return run;
}

}  // namespace circuitry
