#pragma once
// A norm after the sum of a layer's heads (Gemma 2 and 3's post-attention RMSNorm), split into
// the heads' shares, on the tape (DESIGN.md section 2, "A norm after the heads' sum"):
//   S = sum_h x_h,  y_h = w * x_h / sqrt(mean(S^2) + eps)     so that sum_h y_h = RMSNorm(S)
// Each head's node output is its share y_h; its backward reaches every head of the layer through
// the shared rstd(S). The kernels and the backward's formula: backends/cpu/post_norm_kernels.hpp.
#include "circuitry/ops/common.hpp"

namespace circuitry::ops {

/// x [H, rows, D] (each head's output z_h W_O[h]), w [D] -> [H, rows, D].
template <class Ctx, class T = typename Ctx::scalar>
Var<T> post_norm_shares(const Ctx& ctx, const Var<T>& x, const Var<T>& w, std::type_identity_t<T> eps) {
  using Kernels = typename Ctx::backend;
  require(x.shape.rank == 3 && w.shape.rank == 1 && w.shape[0] == x.shape[2],
          "post_norm_shares: x must be [heads, rows, D] and w [D], got " + x.shape.str() + " and " + w.shape.str());
  const std::size_t H = x.shape[0], rows = x.shape[1], D = x.shape[2];
  Var<T> y = ctx.output(x.shape, any_grad(x, w));
  T* rstd = ctx.arena().template alloc<T>(rows);  // [rows]
  Kernels::post_norm_shares_forward(H, rows, D, rows * D, x.value, w.value, T(eps), y.value, rstd);
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, x, w, y, rstd, H, rows, D] {
        Kernels::post_norm_shares_backward(H, rows, D, rows * D, x.value, w.value, rstd, ctx.grad(y), ctx.grad(x), ctx.grad(w));
      });
  }
  return y;
}

}  // namespace circuitry::ops
