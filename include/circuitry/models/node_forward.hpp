#pragma once
// Forward passes of single graph nodes, for runs where ports read different inputs
// (activation patching, path patching, the treeified model). Each reads residual-stream
// copies and writes the node's output as it enters the residual stream. No tape.
#include <vector>

#include "circuitry/models/model.hpp"

namespace circuitry {

/// Head h of layer l's q | k | v from three residual copies (each [B, P, D]; they may alias):
/// LN1, then this head's columns of the fused projection. [B, P, 3 * dh], in the arena.
template <class M, class T = typename M::scalar>
T* head_qkv(const M& model, std::size_t l, std::size_t h, const T* xq, const T* xk, const T* xv, std::size_t rows,
            Arena& arena) {
  const auto& c = model.config();
  const auto& w = model.weights().layers[l];
  const std::size_t D = c.n_embd, dh = c.d_head();
  T* normed = arena.template alloc<T>(rows * D);
  T* mean = arena.template alloc<T>(rows);
  T* rstd = arena.template alloc<T>(rows);
  T* qkv = arena.template alloc<T>(rows * 3 * dh);  // [B, P, 3 * dh]: this head's q | k | v
  const T* inputs[3] = {xq, xk, xv};
  for (std::size_t j = 0; j < 3; ++j) {
    if (j == 0 || inputs[j] != inputs[j - 1])
      ops::layer_norm_forward(inputs[j], w.ln1_w.data(), w.ln1_b.data(), normed, mean, rstd, rows, D,
                              static_cast<T>(c.layer_norm_epsilon));
    const std::size_t col = j * D + h * dh;
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t i = 0; i < dh; ++i) qkv[r * 3 * dh + j * dh + i] = w.b_qkv[col + i];
    gemm<T>(Trans::No, Trans::No, rows, dh, D, T(1), normed, D, w.w_qkv.data() + col, 3 * D, T(1), qkv + j * dh, 3 * dh);
  }
  return qkv;
}

/// Head h of layer l reading its q, k and v inputs from three residual copies
/// (each [B, P, D]; they may alias). out = z_h W_O[h], without b_O. [B, P, D]
template <class M, class T = typename M::scalar>
void head_output(const M& model, std::size_t l, std::size_t h, const T* xq, const T* xk, const T* xv, std::size_t B,
                 std::size_t P, Arena& arena, T* out) {
  const auto& c = model.config();
  const std::size_t D = c.n_embd, dh = c.d_head(), rows = B * P;
  Context<T, false> ctx(arena);
  Var<T> packed{head_qkv(model, l, h, xq, xk, xv, rows, arena), {B, P, 3 * dh}, nullptr};
  Var<T> z = ops::attention_mix(ctx, ops::causal_attention_pattern(ctx, packed, 1), packed, 1);  // [B, P, 1, dh]
  gemm<T>(Trans::No, Trans::No, rows, D, dh, T(1), z.value, dh, model.weights().layers[l].w_o.data() + h * dh * D, D, T(0),
          out, D);
}

/// The same head's output at one query row per sequence (`last`: flat row b * P + t), the
/// last layer of a run that wants only the last positions' logits. out [B, D]
template <class M, class T = typename M::scalar>
void head_output_last(const M& model, std::size_t l, std::size_t h, const T* xq, const T* xk, const T* xv,
                      std::size_t B, std::size_t P, const std::vector<std::size_t>& last, Arena& arena, T* out) {
  const auto& c = model.config();
  const std::size_t D = c.n_embd, dh = c.d_head();
  const T* qkv = head_qkv(model, l, h, xq, xk, xv, B * P, arena);  // [B, P, 3 * dh]
  T* z = arena.template alloc<T>(B * dh);                          // [B, dh]
  ops::causal_attention_rows(qkv, B, P, dh, 1, last, z);
  gemm<T>(Trans::No, Trans::No, B, D, dh, T(1), z, dh, model.weights().layers[l].w_o.data() + h * dh * D, D, T(0), out, D);
}

/// MLP l reading x [B, P, D]; out = W_proj gelu(LN2(x) W_fc + b_fc) + b_proj. [B, P, D]
template <class M, class T = typename M::scalar>
void mlp_output(const M& model, std::size_t l, const T* x, std::size_t B, std::size_t P, Arena& arena, T* out) {
  const auto& c = model.config();
  const auto& w = model.weights().layers[l];
  const std::size_t D = c.n_embd;
  Context<T, false> ctx(arena);
  auto pv = [](const auto& t, Shape s) { return Var<T>{const_cast<T*>(t.data()), s, nullptr}; };
  Var<T> wfc = pv(w.w_fc, {D, c.n_inner}), bfc = pv(w.b_fc, {c.n_inner}), wp = pv(w.w_proj, {c.n_inner, D}),
         bp = pv(w.b_proj, {D});
  Var<T> h = ops::norm_linear_ports(ctx, Var<T>{const_cast<T*>(x), {B, P, D}, nullptr}, pv(w.ln2_w, {D}), pv(w.ln2_b, {D}),
                                    static_cast<T>(c.layer_norm_epsilon), &wfc, &bfc, ops::PortSplit::single());
  Var<T> m = ops::linear(ctx, ops::gelu_new(ctx, h), wp, &bp);
  std::copy(m.value, m.value + B * P * D, out);
}

/// Logits at the given rows of the final norm's input x [B, P, D] -> [rows, vocab].
template <class M, class T = typename M::scalar>
std::vector<T> logits_from_residual(const M& model, const T* x, std::size_t B, std::size_t P, const std::vector<std::size_t>& rows,
                                    Arena& arena) {
  const auto& c = model.config();
  const std::size_t D = c.n_embd;
  Context<T, false> ctx(arena);
  Var<T> picked = ops::gather_rows(ctx, Var<T>{const_cast<T*>(x), {B * P, D}, nullptr}, rows);  // [rows, D]
  const auto& W = model.weights();
  Var<T> normed = ops::layer_norm(ctx, picked, Var<T>{const_cast<T*>(W.lnf_w.data()), {D}, nullptr},
                                  Var<T>{const_cast<T*>(W.lnf_b.data()), {D}, nullptr}, static_cast<T>(c.layer_norm_epsilon));
  Var<T> logits = ops::matmul_transposed(ctx, normed, Var<T>{const_cast<T*>(W.unembed().data()), {c.vocab_size, D}, nullptr});
  return std::vector<T>(logits.value, logits.value + logits.numel());
}

/// The constant part of the residual stream before a stage (DESIGN.md: the attention output
/// biases b_O are never patched): sum of b_O of the layers whose attention precedes `stage`
/// (stage 2l: layer l's input, 2l + 1: its MLP input, 2L: the final norm's input). [D]
template <class M, class T = typename M::scalar>
std::vector<T> residual_bias(const M& model, std::size_t stage) {
  const std::size_t D = model.config().n_embd;
  std::vector<T> b(D, T(0));
  for (std::size_t l = 0; 2 * l + 1 <= stage && l < model.config().n_layer; ++l)
    for (std::size_t i = 0; i < D; ++i) b[i] += model.weights().layers[l].b_o[i];
  return b;
}

}  // namespace circuitry
