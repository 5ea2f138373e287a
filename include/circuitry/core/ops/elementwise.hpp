#pragma once
// Broadcast add and multiply: b's shape is a suffix of a's (a [B, P, D] + b [D] adds b to
// every row; equal shapes add elementwise). Backward sums the broadcast dimension away.
#include "circuitry/core/ops/common.hpp"

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
  const std::size_t period = detail::broadcast_period(a, b, "add"), n = a.numel();
  Var<T> y = ctx.output(a.shape, any_grad(a, b));
  for (std::size_t r = 0; r < n; r += period) vec(y.value + r, period) = vec(a.value + r, period) + vec(b.value, period);
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, a, b, y, period, n] {
        const T* dy = ctx.grad(y);
        if (a.needs_grad()) vec(ctx.grad(a), n) += vec(dy, n);
        if (b.needs_grad())
          for (std::size_t r = 0; r < n; r += period) vec(ctx.grad(b), period) += vec(dy + r, period);
      });
  }
  return y;
}

/// a * b elementwise, b broadcast over a's leading dimensions.
template <class Ctx, class T = typename Ctx::scalar>
Var<T> mul(const Ctx& ctx, const Var<T>& a, const Var<T>& b) {
  const std::size_t period = detail::broadcast_period(a, b, "mul"), n = a.numel();
  Var<T> y = ctx.output(a.shape, any_grad(a, b));
  for (std::size_t r = 0; r < n; r += period) vec(y.value + r, period) = vec(a.value + r, period) * vec(b.value, period);
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, a, b, y, period, n] {
        const T* dy = ctx.grad(y);
        for (std::size_t r = 0; r < n; r += period) {
          if (a.needs_grad()) vec(ctx.grad(a) + r, period) += vec(dy + r, period) * vec(b.value, period);
          if (b.needs_grad()) vec(ctx.grad(b), period) += vec(dy + r, period) * vec(a.value + r, period);
        }
      });
  }
  return y;
}

/// s * a for a constant s.
template <class Ctx, class T = typename Ctx::scalar>
Var<T> scale(const Ctx& ctx, const Var<T>& a, std::type_identity_t<T> s) {
  const std::size_t n = a.numel();
  Var<T> y = ctx.output(a.shape, a.needs_grad());
  vec(y.value, n) = s * vec(a.value, n);
  if constexpr (Ctx::records) {
    if (y.needs_grad()) ctx.on_backward([ctx, a, y, s, n] { vec(ctx.grad(a), n) += s * vec(ctx.grad(y), n); });
  }
  return y;
}

}  // namespace circuitry::ops
