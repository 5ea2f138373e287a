#pragma once
// Sums and means: over everything (to a scalar) or over the last dimension.
#include "circuitry/core/ops/common.hpp"

namespace circuitry::ops {

/// Sum of all entries -> scalar.
template <class Ctx, class T = typename Ctx::scalar>
Var<T> sum(const Ctx& ctx, const Var<T>& x) {
  const std::size_t n = x.numel();
  Var<T> y = ctx.output(Shape{}, x.needs_grad());
  y.value[0] = sum_any_alignment(x.value, n);
  if constexpr (Ctx::records) {
    if (y.needs_grad()) ctx.on_backward([ctx, x, y, n] { vec(ctx.grad(x), n) += ctx.grad(y)[0]; });
  }
  return y;
}

/// Mean of all entries -> scalar.
template <class Ctx, class T = typename Ctx::scalar>
Var<T> mean(const Ctx& ctx, const Var<T>& x) {
  const std::size_t n = x.numel();
  Var<T> y = ctx.output(Shape{}, x.needs_grad());
  y.value[0] = sum_any_alignment(x.value, n) / T(n);
  if constexpr (Ctx::records) {
    if (y.needs_grad()) ctx.on_backward([ctx, x, y, n] { vec(ctx.grad(x), n) += ctx.grad(y)[0] / T(n); });
  }
  return y;
}

/// Sum over the last dimension: [..., N] -> [...].
template <class Ctx, class T = typename Ctx::scalar>
Var<T> sum_last(const Ctx& ctx, const Var<T>& x) {
  const std::size_t N = x.shape.cols(), rows = x.shape.rows();
  Shape ys = x.shape;
  ys.rank -= 1;
  Var<T> y = ctx.output(ys, x.needs_grad());
  for (std::size_t r = 0; r < rows; ++r) y.value[r] = sum_any_alignment(x.value + r * N, N);
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, x, y, N, rows] {
        const T* dy = ctx.grad(y);
        T* dx = ctx.grad(x);
        for (std::size_t r = 0; r < rows; ++r) vec(dx + r * N, N) += dy[r];
      });
  }
  return y;
}

}  // namespace circuitry::ops
