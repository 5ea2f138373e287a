#pragma once
// log-softmax over the last dimension, exp, and cross-entropy.
//   log_softmax(x)_i = x_i - logsumexp(x);  backward: dx = dy - softmax(x) * sum(dy).
//   cross_entropy(logits, t) = mean_r -log_softmax(logits_r)[t_r].
#include <vector>

#include "circuitry/ops/common.hpp"

namespace circuitry::ops {

template <class Ctx, class T = typename Ctx::scalar>
Var<T> log_softmax(const Ctx& ctx, const Var<T>& x) {
  using Kernels = typename Ctx::backend;
  const std::size_t V = x.shape.cols(), rows = x.shape.rows();
  Var<T> y = ctx.output(x.shape, x.needs_grad());
  Kernels::log_softmax_forward(rows, V, x.value, y.value);
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, x, y, V, rows] { Kernels::log_softmax_backward(rows, V, y.value, ctx.grad(y), ctx.grad(x)); });
  }
  return y;
}

template <class Ctx, class T = typename Ctx::scalar>
Var<T> exp(const Ctx& ctx, const Var<T>& x) {
  using Kernels = typename Ctx::backend;
  const std::size_t n = x.numel();
  Var<T> y = ctx.output(x.shape, x.needs_grad());
  Kernels::exp(n, x.value, y.value);
  if constexpr (Ctx::records) {
    if (y.needs_grad()) ctx.on_backward([ctx, x, y, n] { Kernels::mul_add(n, ctx.grad(y), y.value, ctx.grad(x)); });
  }
  return y;
}

/// Mean next-token loss: logits [..., V], targets one per row -> scalar.
template <class Ctx, class T = typename Ctx::scalar>
Var<T> cross_entropy(const Ctx& ctx, const Var<T>& logits, const std::vector<int>& targets) {
  using Kernels = typename Ctx::backend;
  const std::size_t V = logits.shape.cols(), rows = logits.shape.rows();
  require(targets.size() == rows, "cross_entropy: need one target per row (" + std::to_string(rows) + ")");
  for (int t : targets)
    require(t >= 0 && static_cast<std::size_t>(t) < V, "cross_entropy: target " + std::to_string(t) + " out of range");
  Var<T> loss = ctx.output(Shape{}, logits.needs_grad());
  T* logp = ctx.arena().template alloc<T>(rows * V);  // [rows, V]
  Kernels::log_softmax_forward(rows, V, logits.value, logp);
  // Summed in row order, not per thread, so the order never follows the thread count.
  T total = 0;
  for (std::size_t r = 0; r < rows; ++r) total -= logp[r * V + static_cast<std::size_t>(targets[r])];
  loss.value[0] = total / T(rows);
  if constexpr (Ctx::records) {
    if (loss.needs_grad())
      ctx.on_backward([ctx, logits, loss, targets, logp, V, rows] {
        const T g = ctx.grad(loss)[0] / T(rows);
        T* dx = ctx.grad(logits);
        T* p = ctx.arena().template alloc<T>(rows * V);  // [rows, V] softmax
        Kernels::exp(rows * V, logp, p);
        Kernels::axpy(rows * V, g, p, dx);
        for (std::size_t r = 0; r < rows; ++r) dx[r * V + static_cast<std::size_t>(targets[r])] -= g;
      });
  }
  return loss;
}

}  // namespace circuitry::ops
