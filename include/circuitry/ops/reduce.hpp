#pragma once
// Sums and means: over everything (to a scalar) or over the last dimension.
#include "circuitry/ops/common.hpp"

namespace circuitry::ops {

/// Sum of all entries -> scalar.
template <class Ctx, class T = typename Ctx::scalar>
Var<T> sum(const Ctx& ctx, const Var<T>& x) {
  using Kernels = typename Ctx::backend;
  const std::size_t n = x.numel();
  Var<T> y = ctx.output(Shape{}, x.needs_grad());
  y.value[0] = Kernels::sum(n, x.value);
  if constexpr (Ctx::records) {
    if (y.needs_grad()) ctx.on_backward([ctx, x, y, n] { Kernels::add_to_rows(1, n, ctx.grad(y), ctx.grad(x)); });
  }
  return y;
}

/// Mean of all entries -> scalar.
template <class Ctx, class T = typename Ctx::scalar>
Var<T> mean(const Ctx& ctx, const Var<T>& x) {
  using Kernels = typename Ctx::backend;
  const std::size_t n = x.numel();
  Var<T> y = ctx.output(Shape{}, x.needs_grad());
  y.value[0] = Kernels::sum(n, x.value) / T(n);
  if constexpr (Ctx::records) {
    if (y.needs_grad()) ctx.on_backward([ctx, x, y, n] {
        const T g = ctx.grad(y)[0] / T(n);
        Kernels::add_to_rows(1, n, &g, ctx.grad(x));
      });
  }
  return y;
}

/// Sum over the last dimension: [..., N] -> [...].
template <class Ctx, class T = typename Ctx::scalar>
Var<T> sum_last(const Ctx& ctx, const Var<T>& x) {
  using Kernels = typename Ctx::backend;
  const std::size_t N = x.shape.cols(), rows = x.shape.rows();
  Shape ys = x.shape;
  ys.rank -= 1;
  Var<T> y = ctx.output(ys, x.needs_grad());
  Kernels::row_sums(rows, N, x.value, y.value);
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, x, y, N, rows] { Kernels::add_to_rows(rows, N, ctx.grad(y), ctx.grad(x)); });
  }
  return y;
}

}  // namespace circuitry::ops
