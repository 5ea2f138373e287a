#pragma once
// Elementwise MLP activations, each a forward kernel and a backward kernel (dx += f'(x) dy):
//   gelu_new (GPT-2's tanh approximation, Hendrycks & Gimpel 2016 eq. 2):
//     f(x) = 0.5 x (1 + tanh u),  u = sqrt(2/pi) (x + 0.044715 x^3)
//     f'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
//   gelu (exact, torch.nn.functional.gelu): f(x) = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)),
//     f'(x) = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
//   relu: f(x) = max(x, 0), f'(x) = [x > 0]
//   silu (swish, Elfwing et al. 2018): f(x) = x s(x), s = the logistic sigmoid,
//     f'(x) = s(x) (1 + x (1 - s(x)))
// `activation<F>(ctx, x)` is the tape op for any F with static forward/backward kernels of
// this shape (the MLP components' activation tags, models/components/mlp.hpp), and
// `gated_activation<F>(ctx, x)` the gated form of GLU MLPs (Shazeer 2020; Llama's SwiGLU):
//   x = [gate | up] [rows, 2F] -> y = f(gate) * up [rows, F]
//   d gate = f'(gate) (dy * up),  d up = f(gate) dy.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "circuitry/core/ops/common.hpp"

namespace circuitry::ops {

/// Elementwise over blocks of 4096 so Eigen's vectorised functions do the work.
template <class F>
void for_blocks(std::size_t n, F&& f) {
  constexpr std::size_t kBlock = 4096;
  const std::size_t blocks = (n + kBlock - 1) / kBlock;
  parallel_items(blocks, kBlock, [&](std::size_t b) { f(b * kBlock, std::min(kBlock, n - b * kBlock)); });
}

template <class T>
void gelu_new_forward(const T* x, T* y, std::size_t n) {
  const T c = std::sqrt(T(2) / std::numbers::pi_v<T>);
  for_blocks(n, [&](std::size_t at, std::size_t len) {
    auto v = vec(x + at, len);
    vec(y + at, len) = T(0.5) * v * (T(1) + (c * (v + T(0.044715) * v.cube())).tanh());
  });
}

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

template <class T>
void gelu_forward(const T* x, T* y, std::size_t n) {
  const T inv_sqrt2 = T(1) / std::numbers::sqrt2_v<T>;
  for_blocks(n, [&](std::size_t at, std::size_t len) {
    for (std::size_t i = at; i < at + len; ++i) y[i] = T(0.5) * x[i] * (T(1) + std::erf(x[i] * inv_sqrt2));
  });
}

template <class T>
void gelu_backward(const T* x, const T* dy, T* dx, std::size_t n) {
  const T inv_sqrt2 = T(1) / std::numbers::sqrt2_v<T>, inv_sqrt2pi = std::numbers::inv_sqrtpi_v<T> * inv_sqrt2;
  for_blocks(n, [&](std::size_t at, std::size_t len) {
    for (std::size_t i = at; i < at + len; ++i) {
      const T cdf = T(0.5) * (T(1) + std::erf(x[i] * inv_sqrt2));
      dx[i] += (cdf + x[i] * inv_sqrt2pi * std::exp(T(-0.5) * x[i] * x[i])) * dy[i];
    }
  });
}

template <class T>
void relu_forward(const T* x, T* y, std::size_t n) {
  for_blocks(n, [&](std::size_t at, std::size_t len) { vec(y + at, len) = vec(x + at, len).max(T(0)); });
}

template <class T>
void relu_backward(const T* x, const T* dy, T* dx, std::size_t n) {
  for_blocks(n, [&](std::size_t at, std::size_t len) {
    vec(dx + at, len) += (vec(x + at, len) > T(0)).template cast<T>() * vec(dy + at, len);
  });
}

template <class T>
void silu_forward(const T* x, T* y, std::size_t n) {
  for_blocks(n, [&](std::size_t at, std::size_t len) {
    auto v = vec(x + at, len);
    vec(y + at, len) = v / (T(1) + (-v).exp());
  });
}

template <class T>
void silu_backward(const T* x, const T* dy, T* dx, std::size_t n) {
  for_blocks(n, [&](std::size_t at, std::size_t len) {
    auto v = vec(x + at, len);
    const Eigen::Array<T, Eigen::Dynamic, 1> s = T(1) / (T(1) + (-v).exp());
    vec(dx + at, len) += s * (T(1) + v * (T(1) - s)) * vec(dy + at, len);
  });
}

/// y = F(x) elementwise, F a type with static forward(x, y, n) and backward(x, dy, dx, n).
template <class F, class Ctx, class T = typename Ctx::scalar>
Var<T> activation(const Ctx& ctx, const Var<T>& x) {
  Var<T> y = ctx.output(x.shape, x.needs_grad());
  F::forward(x.value, y.value, x.numel());
  if constexpr (Ctx::records) {
    if (y.needs_grad()) ctx.on_backward([ctx, x, y] { F::backward(x.value, ctx.grad(y), ctx.grad(x), x.numel()); });
  }
  return y;
}

/// x = [gate | up] [rows..., 2F] -> y = F(gate) * up [rows..., F] (a gated linear unit).
template <class F, class Ctx, class T = typename Ctx::scalar>
Var<T> gated_activation(const Ctx& ctx, const Var<T>& x) {
  const std::size_t rows = x.shape.rows(), F2 = x.shape.cols(), Fw = F2 / 2;
  require(F2 % 2 == 0, "gated_activation: the last dimension (" + std::to_string(F2) + ") must be gate | up, even");
  Shape ys = x.shape;
  ys[ys.rank - 1] = Fw;
  Var<T> y = ctx.output(ys, x.needs_grad());
  parallel_items(rows, Fw, [&](std::size_t r) {
    T* yr = y.value + r * Fw;
    F::forward(x.value + r * F2, yr, Fw);
    vec(yr, Fw) *= vec(x.value + r * F2 + Fw, Fw);
  });
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, x, y, rows, F2, Fw] {
        const T* dy = ctx.grad(y);
        T* dx = ctx.grad(x);
        T* scratch = ctx.arena().template alloc<T>(rows * Fw);  // dy * up, then f(gate)
        parallel_items(rows, Fw, [&](std::size_t r) {
          const T* gate = x.value + r * F2;
          const T* up = gate + Fw;
          T* s = scratch + r * Fw;
          vec(s, Fw) = vec(dy + r * Fw, Fw) * vec(up, Fw);
          F::backward(gate, s, dx + r * F2, Fw);  // d gate += f'(gate) (dy * up)
          F::forward(gate, s, Fw);
          vec(dx + r * F2 + Fw, Fw) += vec(s, Fw) * vec(dy + r * Fw, Fw);  // d up += f(gate) dy
        });
      });
  }
  return y;
}

}  // namespace circuitry::ops
