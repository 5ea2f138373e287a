#pragma once
// RMS norm over the last dimension (Zhang & Sennrich 2019; Llama's LlamaRMSNorm):
//   rstd = 1 / sqrt(mean(x^2) + eps),  xhat = x * rstd,  y = xhat * w   (no mean, no bias)
// Backward: with g = dy * w,
//   dx = rstd * (g - xhat * mean(g * xhat)),  dw += sum dy * xhat.
// (The layer norm's formula without the mean terms: the norm does not subtract the mean.)
// The kernels have the layer norm's signatures (ops/layer_norm.hpp) so that the norm
// components share ops::norm_linear_ports; `mean` is written as 0 and never read.
#include <cmath>

#include "circuitry/core/ops/common.hpp"

namespace circuitry::ops {

/// x, y [rows, D]; mean, rstd [rows]. b is unused (an RMS norm has no bias).
template <class T>
void rms_norm_forward(const T* x, const T* w, T* y, T* mean, T* rstd, std::size_t rows, std::size_t D, T eps) {
  parallel_items(rows, D, [&](std::size_t r) {
    auto xr = vec(x + r * D, D);
    const T s = T(1) / std::sqrt(xr.square().mean() + eps);
    mean[r] = T(0);
    rstd[r] = s;
    vec(y + r * D, D) = xr * s * vec(w, D);
  });
}

/// dx[rows, D] += d RMSNorm(x) / dx applied to dy.
template <class T>
void rms_norm_backward_input(const T* dy, const T* x, const T* w, const T* rstd, T* dx, std::size_t rows, std::size_t D) {
  parallel_items(rows, D, [&](std::size_t r) {
    auto xhat = vec(x + r * D, D) * rstd[r];
    auto g = vec(dy + r * D, D) * vec(w, D);
    const T gx_mean = (g * xhat).mean();
    vec(dx + r * D, D) += rstd[r] * (g - xhat * gx_mean);
  });
}

/// g[rows, D] := d RMSNorm(x) / dx applied to g (serial; for callers that parallelise across ports).
template <class T>
void rms_norm_backward_in_place(T* g, const T* x, const T* w, const T* rstd, std::size_t rows, std::size_t D) {
  for (std::size_t r = 0; r < rows; ++r) {
    auto xhat = vec(x + r * D, D) * rstd[r];
    auto gr = vec(g + r * D, D);
    const Eigen::Array<T, Eigen::Dynamic, 1> gw = gr * vec(w, D);
    const T gx_mean = (gw * xhat).mean();
    gr = rstd[r] * (gw - xhat * gx_mean);
  }
}

/// dw [D] += the weight gradient for dy.
template <class T>
void rms_norm_backward_params(const T* dy, const T* x, const T* rstd, T* dw, std::size_t rows, std::size_t D) {
  if (!dw) return;
  for (std::size_t r = 0; r < rows; ++r) vec(dw, D) += vec(dy + r * D, D) * vec(x + r * D, D) * rstd[r];
}

}  // namespace circuitry::ops
