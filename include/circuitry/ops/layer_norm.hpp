#pragma once
// Layer norm over the last dimension as a tape op (the kernels and their formulas:
// backends/cpu/norm_kernels.hpp). The port-splitting op (ops/norm_linear.hpp) applies any norm
// through the same kernels.
#include "circuitry/ops/common.hpp"

namespace circuitry::ops {

/// LN over the last dimension of x [..., D] with weight w [D] and bias b [D].
template <class Ctx, class T = typename Ctx::scalar>
Var<T> layer_norm(const Ctx& ctx, const Var<T>& x, const Var<T>& w, const Var<T>& b, std::type_identity_t<T> eps) {
  using Kernels = typename Ctx::backend;
  const std::size_t D = x.shape.cols(), rows = x.shape.rows();
  require(w.numel() == D && b.numel() == D, "layer_norm: weight and bias must have " + std::to_string(D) + " values");
  Var<T> y = ctx.output(x.shape, any_grad(x, w, b));
  T* mean = ctx.arena().template alloc<T>(rows);  // [rows]
  T* rstd = ctx.arena().template alloc<T>(rows);  // [rows]
  Kernels::norm_forward(NormKind::layer_norm, x.value, w.value, b.value, y.value, mean, rstd, rows, D, T(eps));
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, x, w, b, y, mean, rstd, rows, D] {
        const T* dy = ctx.grad(y);
        if (x.needs_grad()) Kernels::norm_backward_input(NormKind::layer_norm, dy, x.value, w.value, mean, rstd, ctx.grad(x), rows, D);
        if (w.needs_grad() || b.needs_grad())
          Kernels::norm_backward_params(NormKind::layer_norm, dy, x.value, mean, rstd, ctx.grad(w), ctx.grad(b), rows, D);
      });
  }
  return y;
}

}  // namespace circuitry::ops
