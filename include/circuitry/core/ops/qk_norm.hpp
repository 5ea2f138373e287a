#pragma once
// QK norm (Qwen3, Gemma 3, OLMo 2 style; Dehghani et al. 2023, "Scaling Vision Transformers to
// 22 Billion Parameters", section 3.1): an RMS norm over d_head applied to every head's query and
// key after the projection and before rotary, with one gain per dimension shared by the heads:
//   q_h <- q_h / sqrt(mean(q_h^2) + eps) * w_q,   k_h <- k_h / sqrt(mean(k_h^2) + eps) * w_k
// Values pass through. The backward is the RMS norm's (ops/rms_norm.hpp), per head vector:
//   with g = dy * w:  dx = rstd (g - xhat mean(g xhat)),  dw += sum dy * xhat.
#include <cmath>

#include "circuitry/core/ops/common.hpp"

namespace circuitry::ops {

/// RMS-normalises the 2H head vectors of a row of q | k (each d_head wide) in place; rstd [2H].
template <class T>
void qk_rms_norm_row(T* qk, const T* w_q, const T* w_k, std::size_t n_heads, std::size_t dh, T eps, T* rstd) {
  for (std::size_t j = 0; j < 2 * n_heads; ++j) {
    auto x = vec(qk + j * dh, dh);
    const T s = T(1) / std::sqrt(x.square().mean() + eps);
    rstd[j] = s;
    x = x * s * vec(j < n_heads ? w_q : w_k, dh);
  }
}

/// qkv [B, P, 3 H d_head] (q | k | v blocks, head h at columns h d_head of each) -> the same with
/// every head's q and k RMS-normalised. w_q, w_k: [d_head].
template <class Ctx, class T = typename Ctx::scalar>
Var<T> qk_rms_norm(const Ctx& ctx, const Var<T>& qkv, std::size_t n_heads, const Var<T>& w_q, const Var<T>& w_k, T eps) {
  require(qkv.shape.rank == 3 && qkv.shape[2] % (3 * n_heads) == 0,
          "qk_rms_norm: qkv must be [batch, pos, 3 H d_head], got " + qkv.shape.str());
  const std::size_t rows = qkv.shape[0] * qkv.shape[1], ld = qkv.shape[2], dh = ld / (3 * n_heads), H = n_heads;
  require(w_q.numel() == dh && w_k.numel() == dh,
          "qk_rms_norm: the q and k norm weights must have d_head = " + std::to_string(dh) + " values");
  Var<T> y = ctx.output(qkv.shape, qkv.needs_grad() || w_q.needs_grad() || w_k.needs_grad());
  T* rstd = ctx.arena().template alloc<T>(rows * 2 * H);  // [rows, 2H]
  vec(y.value, qkv.numel()) = vec(qkv.value, qkv.numel());
  parallel_items(rows, 2 * H * dh, [&](std::size_t r) {
    qk_rms_norm_row(y.value + r * ld, w_q.value, w_k.value, H, dh, eps, rstd + r * 2 * H);
  });
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, qkv, y, w_q, w_k, rstd, rows, ld, dh, H] {
        const T* dy = ctx.grad(y);
        if (qkv.needs_grad()) {
          T* dx = ctx.grad(qkv);
          parallel_items(rows, ld, [&](std::size_t r) {
            for (std::size_t j = 0; j < 2 * H; ++j) {
              const std::size_t at = r * ld + j * dh;
              const T s = rstd[r * 2 * H + j];
              auto xhat = vec(qkv.value + at, dh) * s;
              auto g = vec(dy + at, dh) * vec((j < H ? w_q : w_k).value, dh);
              const T gx_mean = (g * xhat).mean();
              vec(dx + at, dh) += s * (g - xhat * gx_mean);
            }
            vec(dx + r * ld + 2 * H * dh, H * dh) += vec(dy + r * ld + 2 * H * dh, H * dh);  // v: identity
          });
        }
        for (std::size_t which = 0; which < 2; ++which) {  // dw_q, dw_k: serial, a fixed order
          const Var<T>& w = which == 0 ? w_q : w_k;
          if (!w.needs_grad()) continue;
          T* dw = ctx.grad(w);
          for (std::size_t r = 0; r < rows; ++r)
            for (std::size_t h = 0; h < H; ++h) {
              const std::size_t at = r * ld + (which * H + h) * dh;
              vec(dw, dh) += vec(dy + at, dh) * vec(qkv.value + at, dh) * rstd[r * 2 * H + which * H + h];
            }
        }
      });
  }
  return y;
}

}  // namespace circuitry::ops
