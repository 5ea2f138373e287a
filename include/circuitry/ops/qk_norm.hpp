#pragma once
// QK norm (Qwen3, Gemma 3, OLMo 2 style; Dehghani et al. 2023, "Scaling Vision Transformers to
// 22 Billion Parameters", section 3.1): an RMS norm over d_head applied to every head's query and
// key after the projection and before rotary, with one gain per dimension shared by the heads:
//   q_h <- q_h / sqrt(mean(q_h^2) + eps) * w_q,   k_h <- k_h / sqrt(mean(k_h^2) + eps) * w_k
// Values pass through. The backward is the RMS norm's, per head vector (the kernels:
// backends/cpu/norm_kernels.hpp):
//   with g = dy * w:  dx = rstd (g - xhat mean(g xhat)),  dw += sum dy * xhat.
#include "circuitry/ops/common.hpp"

namespace circuitry::ops {

/// qkv [B, P, 3 H d_head] (q | k | v blocks, head h at columns h d_head of each) -> the same with
/// every head's q and k RMS-normalised. w_q, w_k: [d_head].
template <class Ctx, class T = typename Ctx::scalar>
Var<T> qk_rms_norm(const Ctx& ctx, const Var<T>& qkv, std::size_t n_heads, const Var<T>& w_q, const Var<T>& w_k, T eps) {
  using Kernels = typename Ctx::backend;
  require(qkv.shape.rank == 3 && qkv.shape[2] % (3 * n_heads) == 0,
          "qk_rms_norm: qkv must be [batch, pos, 3 H d_head], got " + qkv.shape.str());
  const std::size_t rows = qkv.shape[0] * qkv.shape[1], ld = qkv.shape[2], dh = ld / (3 * n_heads), H = n_heads;
  require(w_q.numel() == dh && w_k.numel() == dh,
          "qk_rms_norm: the q and k norm weights must have d_head = " + std::to_string(dh) + " values");
  Var<T> y = ctx.output(qkv.shape, qkv.needs_grad() || w_q.needs_grad() || w_k.needs_grad());
  T* rstd = ctx.arena().template alloc<T>(rows * 2 * H);  // [rows, 2H]
  Kernels::copy(qkv.numel(), qkv.value, y.value);
  Kernels::qk_rms_norm_forward(rows, ld, H, dh, w_q.value, w_k.value, eps, y.value, rstd);
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, qkv, y, w_q, w_k, rstd, rows, ld, dh, H] {
        Kernels::qk_rms_norm_backward(rows, ld, H, dh, qkv.value, ctx.grad(y), w_q.value, w_k.value, rstd,
                                      qkv.needs_grad() ? ctx.grad(qkv) : nullptr, w_q.needs_grad() ? ctx.grad(w_q) : nullptr,
                                      w_k.needs_grad() ? ctx.grad(w_k) : nullptr);
      });
  }
  return y;
}

}  // namespace circuitry::ops
