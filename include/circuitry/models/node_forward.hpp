#pragma once
// Forward passes of single graph nodes, for runs where ports read different inputs
// (activation patching, path patching, the treeified model). Each reads residual-stream
// copies and writes the node's output as it enters the residual stream. No tape. The math
// is the model's components' (models/components/), the same code the whole forward runs.
#include <vector>

#include "circuitry/core/arena.hpp"
#include "circuitry/ops.hpp"
#include "circuitry/models/parameters.hpp"

namespace circuitry {

/// Head h of layer l reading its q, k and v inputs from three residual copies
/// (each [B, P, D]; they may alias), under the mask of the run's batch.
/// out = z_h W_O[h], without b_O. [B, P, D]
template <class M, class T = typename M::scalar>
void head_output(const M& model, std::size_t l, std::size_t h, const T* xq, const T* xk, const T* xv, std::size_t B,
                 std::size_t P, const ops::KeyMask& mask, typename M::backend::Arena& arena, T* out) {
  M::attention::template head_output<typename M::norm, typename M::backend>(model.params().layer(l), model.config(), h, xq, xk, xv, B, P, mask,
                                                       model.rotary(l), arena, out);
}

/// The same head's output at some query rows only (`rows`: flat b * P + t), the last layer of
/// a run that wants only the readout rows' logits. out [rows, D]
template <class M, class T = typename M::scalar>
void head_output_rows(const M& model, std::size_t l, std::size_t h, const T* xq, const T* xk, const T* xv,
                      std::size_t B, std::size_t P, const std::vector<std::size_t>& rows, const ops::KeyMask& mask,
                      typename M::backend::Arena& arena, T* out) {
  M::attention::template head_output_rows<typename M::norm, typename M::backend>(model.params().layer(l), model.config(), h, xq, xk, xv, B, P,
                                                            rows, mask, model.rotary(l), arena, out);
}

/// MLP l reading x [rows, D]; out [rows, D] (with b_out).
template <class M, class T = typename M::scalar>
void mlp_output(const M& model, std::size_t l, const T* x, std::size_t rows, typename M::backend::Arena& arena, T* out) {
  if constexpr (M::architecture::has_mlp)
    M::mlp::template node_output<typename M::norm, typename M::backend>(model.params().layer(l), model.config(), x, rows, arena, out);
  else
    throw Error("mlp_output: the architecture has no MLPs");
}

/// Logits at the given rows of the final norm's input x [B, P, D] -> [rows, vocab_out].
template <class M, class T = typename M::scalar>
std::vector<T> logits_from_residual(const M& model, const T* x, std::size_t B, std::size_t P, const std::vector<std::size_t>& rows,
                                    typename M::backend::Arena& arena) {
  const std::size_t D = model.config().n_embd;
  Context<T, false, typename M::backend> ctx(arena);
  const ParamVars<T>& pv = model.params();
  Var<T> picked = ops::gather_rows(ctx, Var<T>{const_cast<T*>(x), {B * P, D}, nullptr}, rows);  // [rows, D]
  Var<T> logits = M::unembed::project(ctx, M::unembed::normalize(ctx, picked, pv, model.config()), pv, model.config());
  std::vector<T> out(logits.numel());
  M::backend::to_host(out.size(), logits.value, out.data());
  return out;
}

/// The constant part of the residual stream before a stage (DESIGN.md: the attention output
/// biases b_O are never patched): sum of b_O of the layers whose attention precedes `stage`
/// (stage 2l: layer l's input, 2l + 1: its MLP input, 2L: the final norm's input; a parallel
/// block's MLP does not see its own layer's b_O). Zero when the model has no b_O. [D]
template <class M, class T = typename M::scalar>
std::vector<T> residual_bias(const M& model, std::size_t stage) {
  const std::size_t D = model.config().n_embd;
  std::vector<T> b(D, T(0));
  for (std::size_t l = 0; M::stage_after_heads(l) <= stage && l < model.config().n_layer; ++l)
    if (const Var<T>& b_o = model.params().layer(l)["attn.b_O"]; b_o.value)
      for (std::size_t i = 0; i < D; ++i) b[i] += b_o.value[i];
  return b;
}

}  // namespace circuitry
