#pragma once
// The CPU backend's log-softmax over rows, the metrics' and the loss's kernel:
//   log_softmax(x)_i = x_i - logsumexp(x);  backward: dx = dy - softmax(x) * sum(dy).
#include <cmath>
#include <cstddef>

#include "circuitry/backends/cpu/vector_kernels.hpp"

namespace circuitry::cpu {

/// y [rows, V] = log_softmax of each row of x [rows, V].
template <class T>
void log_softmax_forward(std::size_t rows, std::size_t V, const T* x, T* y) {
  parallel_items(rows, V, [&](std::size_t r) {
    auto xr = vec(x + r * V, V);
    const T mx = xr.maxCoeff();
    const T lse = mx + std::log((xr - mx).exp().sum());
    vec(y + r * V, V) = xr - lse;
  });
}

/// dx [rows, V] += the backward of y = log_softmax(x) for dy.
template <class T>
void log_softmax_backward(std::size_t rows, std::size_t V, const T* y, const T* dy, T* dx) {
  for (std::size_t r = 0; r < rows; ++r)
    vec(dx + r * V, V) += vec(dy + r * V, V) - vec(y + r * V, V).exp() * sum_any_alignment(dy + r * V, V);
}

}  // namespace circuitry::cpu
