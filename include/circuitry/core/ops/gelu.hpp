#pragma once
// gelu_new (GPT-2's tanh approximation, Hendrycks & Gimpel 2016 eq. 2):
//   gelu(x) = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
//   gelu'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
#include <algorithm>
#include <cmath>
#include <numbers>

#include "circuitry/core/ops/common.hpp"

namespace circuitry::ops {

/// Elementwise over blocks of 4096 so Eigen's vectorised tanh does the work.
template <class F>
void for_blocks(std::size_t n, F&& f) {
  constexpr std::size_t kBlock = 4096;
  const std::size_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for if (n > kParallelGrain)
  for (std::size_t b = 0; b < blocks; ++b) f(b * kBlock, std::min(kBlock, n - b * kBlock));
}

template <class T>
void gelu_new_forward(const T* x, T* y, std::size_t n) {
  const T c = std::sqrt(T(2) / std::numbers::pi_v<T>);
  for_blocks(n, [&](std::size_t at, std::size_t len) {
    auto v = vec(x + at, len);
    vec(y + at, len) = T(0.5) * v * (T(1) + (c * (v + T(0.044715) * v.cube())).tanh());
  });
}

/// dx += gelu'(x) dy
template <class T>
void gelu_new_backward(const T* x, const T* dy, T* dx, std::size_t n) {
  const T c = std::sqrt(T(2) / std::numbers::pi_v<T>);
  for_blocks(n, [&](std::size_t at, std::size_t len) {
    auto v = vec(x + at, len);
    const Eigen::Array<T, Eigen::Dynamic, 1> t = (c * (v + T(0.044715) * v.cube())).tanh();
    vec(dx + at, len) += (T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t.square()) * c * (T(1) + T(3 * 0.044715) * v.square())) *
                         vec(dy + at, len);
  });
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
