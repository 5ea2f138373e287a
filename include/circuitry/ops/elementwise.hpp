#pragma once
// Broadcast add and multiply: b's shape is a suffix of a's (a [B, P, D] + b [D] adds b to
// every row; equal shapes add elementwise). Backward sums the broadcast dimension away.
#include "circuitry/ops/common.hpp"

namespace circuitry::ops {

namespace detail {
template <class T>
std::size_t broadcast_period(const Var<T>& a, const Var<T>& b, const char* op) {
  bool suffix = b.shape.rank <= a.shape.rank;
  for (std::size_t i = 0; suffix && i < b.shape.rank; ++i)
    suffix = b.shape[b.shape.rank - 1 - i] == a.shape[a.shape.rank - 1 - i];
  require(suffix, std::string(op) + ": cannot broadcast " + b.shape.str() + " onto " + a.shape.str() +
                      " (the second shape must be a suffix of the first)");
  return b.numel();
}
}  // namespace detail

/// a + b, b broadcast over a's leading dimensions.
template <class Ctx, class T = typename Ctx::scalar>
Var<T> add(const Ctx& ctx, const Var<T>& a, const Var<T>& b) {
  using Kernels = typename Ctx::backend;
  const std::size_t period = detail::broadcast_period(a, b, "add"), n = a.numel();
  Var<T> y = ctx.output(a.shape, any_grad(a, b));
  Kernels::add_broadcast(n, period, a.value, b.value, y.value);
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, a, b, y, period, n] {
        const T* dy = ctx.grad(y);
        if (a.needs_grad()) Kernels::axpy(n, T(1), dy, ctx.grad(a));
        if (b.needs_grad()) Kernels::sum_repeats(n, period, dy, ctx.grad(b));
      });
  }
  return y;
}

/// a * b elementwise, b broadcast over a's leading dimensions.
template <class Ctx, class T = typename Ctx::scalar>
Var<T> mul(const Ctx& ctx, const Var<T>& a, const Var<T>& b) {
  using Kernels = typename Ctx::backend;
  const std::size_t period = detail::broadcast_period(a, b, "mul"), n = a.numel();
  Var<T> y = ctx.output(a.shape, any_grad(a, b));
  Kernels::mul_broadcast(n, period, a.value, b.value, y.value);
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, a, b, y, period, n] {
        Kernels::mul_broadcast_backward(n, period, ctx.grad(y), a.value, b.value, a.needs_grad() ? ctx.grad(a) : nullptr,
                                  b.needs_grad() ? ctx.grad(b) : nullptr);
      });
  }
  return y;
}

/// s * a for a constant s.
template <class Ctx, class T = typename Ctx::scalar>
Var<T> scale(const Ctx& ctx, const Var<T>& a, std::type_identity_t<T> s) {
  using Kernels = typename Ctx::backend;
  const std::size_t n = a.numel();
  Var<T> y = ctx.output(a.shape, a.needs_grad());
  Kernels::scale(n, T(s), a.value, y.value);
  if constexpr (Ctx::records) {
    if (y.needs_grad()) ctx.on_backward([ctx, a, y, s, n] { Kernels::axpy(n, T(s), ctx.grad(y), ctx.grad(a)); });
  }
  return y;
}

}  // namespace circuitry::ops
