#pragma once
// The CPU backend's MLP activations, each a forward kernel and a backward kernel (dx += f'(x) dy):
//   gelu_new (GPT-2's tanh approximation, Hendrycks & Gimpel 2016 eq. 2):
//     f(x) = 0.5 x (1 + tanh u),  u = sqrt(2/pi) (x + 0.044715 x^3)
//     f'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
//   gelu (exact, torch.nn.functional.gelu): f(x) = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)),
//     f'(x) = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
//   relu: f(x) = max(x, 0), f'(x) = [x > 0]
//   silu (swish, Elfwing et al. 2018): f(x) = x s(x), s = the logistic sigmoid,
//     f'(x) = s(x) (1 + x (1 - s(x)))
//   tanh: f(x) = tanh x, f'(x) = 1 - tanh^2 x (the soft caps' c tanh(x / c), ops/soft_cap.hpp)
// and the gated form of GLU MLPs (Shazeer 2020; Llama's SwiGLU):
//   x = [gate | up] [rows, 2F] -> y = f(gate) * up [rows, F]
//   d gate = f'(gate) (dy * up),  d up = f(gate) dy.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "circuitry/backends/kernel_args.hpp"
#include "circuitry/backends/cpu/vector_kernels.hpp"

namespace circuitry::cpu {

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

template <class T>
void tanh_forward(const T* x, T* y, std::size_t n) {
  for_blocks(n, [&](std::size_t at, std::size_t len) { vec(y + at, len) = vec(x + at, len).tanh(); });
}

template <class T>
void tanh_backward(const T* x, const T* dy, T* dx, std::size_t n) {
  for_blocks(n, [&](std::size_t at, std::size_t len) {
    const Eigen::Array<T, Eigen::Dynamic, 1> t = vec(x + at, len).tanh();
    vec(dx + at, len) += (T(1) - t * t) * vec(dy + at, len);
  });
}

/// y[n] = f(x) for the activation `kind`.
template <class T>
void activation_forward(ActivationKind kind, std::size_t n, const T* x, T* y) {
  switch (kind) {
    case ActivationKind::gelu_new: return gelu_new_forward(x, y, n);
    case ActivationKind::gelu: return gelu_forward(x, y, n);
    case ActivationKind::relu: return relu_forward(x, y, n);
    case ActivationKind::silu: return silu_forward(x, y, n);
    case ActivationKind::tanh: return tanh_forward(x, y, n);
  }
}

/// dx[n] += f'(x) dy.
template <class T>
void activation_backward(ActivationKind kind, std::size_t n, const T* x, const T* dy, T* dx) {
  switch (kind) {
    case ActivationKind::gelu_new: return gelu_new_backward(x, dy, dx, n);
    case ActivationKind::gelu: return gelu_backward(x, dy, dx, n);
    case ActivationKind::relu: return relu_backward(x, dy, dx, n);
    case ActivationKind::silu: return silu_backward(x, dy, dx, n);
    case ActivationKind::tanh: return tanh_backward(x, dy, dx, n);
  }
}

/// x = [gate | up] [rows, 2F] -> y = f(gate) * up [rows, F].
template <class T>
void gated_activation_forward(ActivationKind kind, std::size_t rows, std::size_t F, const T* x, T* y) {
  parallel_items(rows, F, [&](std::size_t r) {
    T* yr = y + r * F;
    activation_forward(kind, F, x + r * 2 * F, yr);
    vec(yr, F) *= vec(x + r * 2 * F + F, F);
  });
}

/// dx [rows, 2F] += the gated activation's backward for dy [rows, F]; scratch [rows, F].
template <class T>
void gated_activation_backward(ActivationKind kind, std::size_t rows, std::size_t F, const T* x, const T* dy, T* dx, T* scratch) {
  parallel_items(rows, F, [&](std::size_t r) {
    const T* gate = x + r * 2 * F;
    const T* up = gate + F;
    T* s = scratch + r * F;
    vec(s, F) = vec(dy + r * F, F) * vec(up, F);
    activation_backward(kind, F, gate, s, dx + r * 2 * F);  // d gate += f'(gate) (dy * up)
    activation_forward(kind, F, gate, s);
    vec(dx + r * 2 * F + F, F) += vec(s, F) * vec(dy + r * F, F);  // d up += f(gate) dy
  });
}

}  // namespace circuitry::cpu
