#pragma once
// gelu_new (GPT-2's tanh approximation, Hendrycks & Gimpel 2016 eq. 2):
//   gelu(x) = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
//   gelu'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
#include <cmath>
#include <numbers>

#include "circuitry/core/ops/common.hpp"

namespace circuitry::ops {

template <class T>
void gelu_new_forward(const T* x, T* y, std::size_t n) {
  const T c = std::sqrt(T(2) / std::numbers::pi_v<T>);
#pragma omp parallel for if (n > kParallelGrain)
  for (std::size_t i = 0; i < n; ++i) {
    const T v = x[i];
    y[i] = T(0.5) * v * (T(1) + std::tanh(c * (v + T(0.044715) * v * v * v)));
  }
}

/// dx += gelu'(x) dy
template <class T>
void gelu_new_backward(const T* x, const T* dy, T* dx, std::size_t n) {
  const T c = std::sqrt(T(2) / std::numbers::pi_v<T>);
#pragma omp parallel for if (n > kParallelGrain)
  for (std::size_t i = 0; i < n; ++i) {
    const T v = x[i];
    const T t = std::tanh(c * (v + T(0.044715) * v * v * v));
    const T d = T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t * t) * c * (T(1) + T(3 * 0.044715) * v * v);
    dx[i] += d * dy[i];
  }
}

template <class Ctx, class T = typename Ctx::scalar>
Var<T> gelu_new(const Ctx& ctx, const Var<T>& x) {
  Var<T> y = ctx.output(x.shape, x.needs_grad());
  gelu_new_forward(x.value, y.value, x.numel());
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, x, y] { gelu_new_backward(x.value, ctx.grad(y), ctx.grad(x), x.numel()); });
  }
  return y;
}

}  // namespace circuitry::ops
