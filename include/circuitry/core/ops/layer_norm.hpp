#pragma once
// Layer norm over the last dimension (biased variance, as torch.nn.LayerNorm):
//   xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps), y = xhat * w + b.
// Backward (llm.c's layernorm_backward): with g = dy * w,
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  dw += sum dy * xhat,  db += sum dy.
// The kernels are separate so the port-splitting op (ops/norm_linear.hpp) can reuse them.
#include <cmath>

#include "circuitry/core/ops/common.hpp"

namespace circuitry::ops {

/// x, y [rows, D]; mean, rstd [rows].
template <class T>
void layer_norm_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, std::size_t rows,
                        std::size_t D, T eps) {
  parallel_items(rows, D, [&](std::size_t r) {
    auto xr = vec(x + r * D, D);
    const T m = sum_any_alignment(x + r * D, D) / T(D);
    const T var = (xr - m).square().mean();
    const T s = T(1) / std::sqrt(var + eps);
    mean[r] = m;
    rstd[r] = s;
    vec(y + r * D, D) = (xr - m) * s * vec(w, D) + vec(b, D);
  });
}

/// dx[rows, D] += d LN(x) / dx applied to dy.
template <class T>
void layer_norm_backward_input(const T* dy, const T* x, const T* w, const T* mean, const T* rstd, T* dx,
                               std::size_t rows, std::size_t D) {
  parallel_items(rows, D, [&](std::size_t r) {
    auto xhat = (vec(x + r * D, D) - mean[r]) * rstd[r];
    auto g = vec(dy + r * D, D) * vec(w, D);
    const T g_mean = g.mean();
    const T gx_mean = (g * xhat).mean();
    vec(dx + r * D, D) += rstd[r] * (g - g_mean - xhat * gx_mean);
  });
}

/// g[rows, D] := d LN(x) / dx applied to g (serial; for callers that parallelise across ports).
template <class T>
void layer_norm_backward_in_place(T* g, const T* x, const T* w, const T* mean, const T* rstd, std::size_t rows, std::size_t D) {
  for (std::size_t r = 0; r < rows; ++r) {
    auto xhat = (vec(x + r * D, D) - mean[r]) * rstd[r];
    auto gr = vec(g + r * D, D);
    const Eigen::Array<T, Eigen::Dynamic, 1> gw = gr * vec(w, D);
    const T g_mean = gw.mean();
    const T gx_mean = (gw * xhat).mean();
    gr = rstd[r] * (gw - g_mean - xhat * gx_mean);
  }
}

/// dw, db [D] += the parameter gradients for dy.
template <class T>
void layer_norm_backward_params(const T* dy, const T* x, const T* mean, const T* rstd, T* dw, T* db,
                                std::size_t rows, std::size_t D) {
  for (std::size_t r = 0; r < rows; ++r) {
    auto d = vec(dy + r * D, D);
    if (dw) vec(dw, D) += d * (vec(x + r * D, D) - mean[r]) * rstd[r];
    if (db) vec(db, D) += d;
  }
}

/// LN over the last dimension of x [..., D] with weight w [D] and bias b [D].
template <class Ctx, class T = typename Ctx::scalar>
Var<T> layer_norm(const Ctx& ctx, const Var<T>& x, const Var<T>& w, const Var<T>& b, std::type_identity_t<T> eps) {
  const std::size_t D = x.shape.cols(), rows = x.shape.rows();
  require(w.numel() == D && b.numel() == D, "layer_norm: weight and bias must have " + std::to_string(D) + " values");
  Var<T> y = ctx.output(x.shape, any_grad(x, w, b));
  T* mean = ctx.arena().template alloc<T>(rows);
  T* rstd = ctx.arena().template alloc<T>(rows);
  layer_norm_forward(x.value, w.value, b.value, y.value, mean, rstd, rows, D, eps);
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, x, w, b, y, mean, rstd, rows, D] {
        const T* dy = ctx.grad(y);
        if (x.needs_grad()) layer_norm_backward_input(dy, x.value, w.value, mean, rstd, ctx.grad(x), rows, D);
        if (w.needs_grad() || b.needs_grad())
          layer_norm_backward_params(dy, x.value, mean, rstd, ctx.grad(w), ctx.grad(b), rows, D);
      });
  }
  return y;
}

}  // namespace circuitry::ops
