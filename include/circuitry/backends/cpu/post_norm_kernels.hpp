#pragma once
// The CPU backend's kernels for a norm after the heads' sum (Gemma 2 and 3's post-attention
// RMSNorm), split into the heads' shares (DESIGN.md section 2, "A norm after the heads' sum"):
//   S = sum_h x_h,  s = 1 / sqrt(mean(S^2) + eps)  (per row),  y_h = w * x_h * s
// so that sum_h y_h = RMSNorm(S), and each head's node output is its share y_h.
// Backward, with c = sum_h sum_i dy_h,i w_i x_h,i per row:
//   dx_g = s w * dy_g - s^3 S c / D      (every head g sees the same second term)
//   dw   = sum_rows sum_h dy_h * x_h * s
// x, y, dy, dx: H blocks of [rows, D], block h at h * stride; rstd [rows].
#include <cmath>

#include "circuitry/backends/cpu/vector_kernels.hpp"
#include "circuitry/core/parallel.hpp"

namespace circuitry::cpu {

/// y may be x (in place): each row's sum is taken before its shares are written.
template <class T>
void post_norm_shares_forward(std::size_t H, std::size_t rows, std::size_t D, std::size_t stride, const T* x, const T* w, T eps,
                              T* y, T* rstd) {
  parallel_items(rows, H * D, [&](std::size_t r) {
    Eigen::Array<T, Eigen::Dynamic, 1> sum = vec(x + r * D, D);  // [D] S of this row
    for (std::size_t h = 1; h < H; ++h) sum += vec(x + h * stride + r * D, D);
    const T s = T(1) / std::sqrt(sum.square().mean() + eps);
    rstd[r] = s;
    for (std::size_t h = 0; h < H; ++h) vec(y + h * stride + r * D, D) = vec(x + h * stride + r * D, D) * s * vec(w, D);
  });
}

/// dx += the shares' backward for dy; dw (may be null) += the weight gradient.
template <class T>
void post_norm_shares_backward(std::size_t H, std::size_t rows, std::size_t D, std::size_t stride, const T* x, const T* w,
                               const T* rstd, const T* dy, T* dx, T* dw) {
  if (dx)
    parallel_items(rows, H * D, [&](std::size_t r) {
      const T s = rstd[r];
      Eigen::Array<T, Eigen::Dynamic, 1> sum = vec(x + r * D, D);  // [D] S of this row
      T c = (vec(dy + r * D, D) * vec(w, D) * vec(x + r * D, D)).sum();
      for (std::size_t h = 1; h < H; ++h) {
        sum += vec(x + h * stride + r * D, D);
        c += (vec(dy + h * stride + r * D, D) * vec(w, D) * vec(x + h * stride + r * D, D)).sum();
      }
      const Eigen::Array<T, Eigen::Dynamic, 1> common = sum * (s * s * s * c / T(D));  // [D]
      for (std::size_t h = 0; h < H; ++h)
        vec(dx + h * stride + r * D, D) += s * vec(w, D) * vec(dy + h * stride + r * D, D) - common;
    });
  if (dw)
    for (std::size_t h = 0; h < H; ++h)
      for (std::size_t r = 0; r < rows; ++r) vec(dw, D) += vec(dy + h * stride + r * D, D) * vec(x + h * stride + r * D, D) * rstd[r];
}

}  // namespace circuitry::cpu
