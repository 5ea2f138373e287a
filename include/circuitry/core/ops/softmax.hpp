#pragma once
// log-softmax over the last dimension, exp, and cross-entropy.
//   log_softmax(x)_i = x_i - logsumexp(x);  backward: dx = dy - softmax(x) * sum(dy).
//   cross_entropy(logits, t) = mean_r -log_softmax(logits_r)[t_r].
#include <cmath>
#include <vector>

#include "circuitry/core/ops/common.hpp"

namespace circuitry::ops {

template <class Ctx, class T = typename Ctx::scalar>
Var<T> log_softmax(const Ctx& ctx, const Var<T>& x) {
  const std::size_t V = x.shape.cols(), rows = x.shape.rows();
  Var<T> y = ctx.output(x.shape, x.needs_grad());
  parallel_items(rows, V, [&](std::size_t r) {
    auto xr = vec(x.value + r * V, V);
    const T mx = xr.maxCoeff();
    const T lse = mx + std::log((xr - mx).exp().sum());
    vec(y.value + r * V, V) = xr - lse;
  });
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, x, y, V, rows] {
        const T* dy = ctx.grad(y);
        T* dx = ctx.grad(x);
        for (std::size_t r = 0; r < rows; ++r) {
          auto d = vec(dy + r * V, V);
          vec(dx + r * V, V) += d - vec(y.value + r * V, V).exp() * sum_any_alignment(dy + r * V, V);
        }
      });
  }
  return y;
}

template <class Ctx, class T = typename Ctx::scalar>
Var<T> exp(const Ctx& ctx, const Var<T>& x) {
  const std::size_t n = x.numel();
  Var<T> y = ctx.output(x.shape, x.needs_grad());
  vec(y.value, n) = vec(x.value, n).exp();
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, x, y, n] { vec(ctx.grad(x), n) += vec(ctx.grad(y), n) * vec(y.value, n); });
  }
  return y;
}

/// Mean next-token loss: logits [..., V], targets one per row -> scalar.
template <class Ctx, class T = typename Ctx::scalar>
Var<T> cross_entropy(const Ctx& ctx, const Var<T>& logits, const std::vector<int>& targets) {
  const std::size_t V = logits.shape.cols(), rows = logits.shape.rows();
  require(targets.size() == rows, "cross_entropy: need one target per row (" + std::to_string(rows) + ")");
  for (int t : targets)
    require(t >= 0 && static_cast<std::size_t>(t) < V, "cross_entropy: target " + std::to_string(t) + " out of range");
  Var<T> loss = ctx.output(Shape{}, logits.needs_grad());
  T* logp = ctx.arena().template alloc<T>(rows * V);
  parallel_items(rows, V, [&](std::size_t r) {
    auto xr = vec(logits.value + r * V, V);
    const T mx = xr.maxCoeff();
    vec(logp + r * V, V) = xr - (mx + std::log((xr - mx).exp().sum()));
  });
  // Summed in row order, not per thread, so the order never follows the thread count.
  T total = 0;
  for (std::size_t r = 0; r < rows; ++r) total -= logp[r * V + static_cast<std::size_t>(targets[r])];
  loss.value[0] = total / T(rows);
  if constexpr (Ctx::records) {
    if (loss.needs_grad())
      ctx.on_backward([ctx, logits, loss, targets, logp, V, rows] {
        const T g = ctx.grad(loss)[0] / T(rows);
        T* dx = ctx.grad(logits);
        for (std::size_t r = 0; r < rows; ++r) {
          vec(dx + r * V, V) += g * vec(logp + r * V, V).exp();
          dx[r * V + static_cast<std::size_t>(targets[r])] -= g;
        }
      });
  }
  return loss;
}

}  // namespace circuitry::ops
