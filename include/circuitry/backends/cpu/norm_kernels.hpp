#pragma once
// The CPU backend's norm kernels, each on [rows, D] buffers with per-row statistics mean,
// rstd [rows] that the forward fills and the backwards read.
//   Layer norm (biased variance, as torch.nn.LayerNorm):
//     xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps), y = xhat * w + b.
//     Backward (llm.c's layernorm_backward): with g = dy * w,
//     dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  dw += sum dy * xhat,  db += sum dy.
//   RMS norm (Zhang & Sennrich 2019; Llama's LlamaRMSNorm): no mean and no bias,
//     rstd = 1 / sqrt(mean(x^2) + eps),  xhat = x * rstd,  y = xhat * w;
//     dx = rstd * (g - xhat * mean(g * xhat)),  dw += sum dy * xhat.
//     Its kernels have the layer norm's signatures; `mean` is written as 0 and never read.
//   None: y = x (tracr's compiled models).
//   With frozen statistics (GIM, Edin et al. 2025, section 3: the norm's scale treated as a
//   constant of the backward pass; the mean is still differentiated): layer norm
//   dx = rstd * (g - mean(g)), RMS norm dx = rstd * g.
// norm_forward and the three backwards dispatch on a NormKind, so the tape ops take the norm
// as data.
#include <algorithm>
#include <cmath>

#include "circuitry/backends/kernel_args.hpp"
#include "circuitry/backends/cpu/vector_kernels.hpp"

namespace circuitry::cpu {

/// x, y [rows, D]; mean, rstd [rows].
template <class T>
void layer_norm_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, std::size_t rows,
                        std::size_t D, T eps) {
  parallel_items(rows, D, [&](std::size_t r) {
    auto xr = vec(x + r * D, D);
    const T m = sum_any_alignment(x + r * D, D) / T(D);
    const T var = (xr - m).square().mean();
    const T s = T(1) / std::sqrt(var + eps);
    mean[r] = m;
    rstd[r] = s;
    vec(y + r * D, D) = (xr - m) * s * vec(w, D) + vec(b, D);
  });
}

/// dx[rows, D] += d LN(x) / dx applied to dy.
template <class T>
void layer_norm_backward_input(const T* dy, const T* x, const T* w, const T* mean, const T* rstd, T* dx,
                               std::size_t rows, std::size_t D) {
  parallel_items(rows, D, [&](std::size_t r) {
    auto xhat = (vec(x + r * D, D) - mean[r]) * rstd[r];
    auto g = vec(dy + r * D, D) * vec(w, D);
    const T g_mean = g.mean();
    const T gx_mean = (g * xhat).mean();
    vec(dx + r * D, D) += rstd[r] * (g - g_mean - xhat * gx_mean);
  });
}

/// g[rows, D] := d LN(x) / dx applied to g (serial; for callers that parallelise across ports).
template <class T>
void layer_norm_backward_in_place(T* g, const T* x, const T* w, const T* mean, const T* rstd, std::size_t rows, std::size_t D) {
  for (std::size_t r = 0; r < rows; ++r) {
    auto xhat = (vec(x + r * D, D) - mean[r]) * rstd[r];
    auto gr = vec(g + r * D, D);
    const Eigen::Array<T, Eigen::Dynamic, 1> gw = gr * vec(w, D);
    const T g_mean = gw.mean();
    const T gx_mean = (gw * xhat).mean();
    gr = rstd[r] * (gw - g_mean - xhat * gx_mean);
  }
}

/// dw, db [D] += the parameter gradients for dy.
template <class T>
void layer_norm_backward_params(const T* dy, const T* x, const T* mean, const T* rstd, T* dw, T* db,
                                std::size_t rows, std::size_t D) {
  for (std::size_t r = 0; r < rows; ++r) {
    auto d = vec(dy + r * D, D);
    if (dw) vec(dw, D) += d * (vec(x + r * D, D) - mean[r]) * rstd[r];
    if (db) vec(db, D) += d;
  }
}

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

template <class T>
void norm_forward(NormKind kind, const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, std::size_t rows, std::size_t D,
                  T eps) {
  switch (kind) {
    case NormKind::layer_norm: return layer_norm_forward(x, w, b, y, mean, rstd, rows, D, eps);
    case NormKind::rms_norm: return rms_norm_forward(x, w, y, mean, rstd, rows, D, eps);
    case NormKind::none: return copy(rows * D, x, y);
  }
}

/// dx[rows, D] += d Norm(x) / dx applied to dy.
template <class T>
void norm_backward_input(NormKind kind, const T* dy, const T* x, const T* w, const T* mean, const T* rstd, T* dx,
                         std::size_t rows, std::size_t D) {
  switch (kind) {
    case NormKind::layer_norm: return layer_norm_backward_input(dy, x, w, mean, rstd, dx, rows, D);
    case NormKind::rms_norm: return rms_norm_backward_input(dy, x, w, rstd, dx, rows, D);
    case NormKind::none: return axpy(rows * D, T(1), dy, dx);
  }
}

/// g[rows, D] := d Norm(x) / dx applied to g (serial; for callers that parallelise across ports).
template <class T>
void norm_backward_in_place(NormKind kind, T* g, const T* x, const T* w, const T* mean, const T* rstd, std::size_t rows,
                            std::size_t D) {
  switch (kind) {
    case NormKind::layer_norm: return layer_norm_backward_in_place(g, x, w, mean, rstd, rows, D);
    case NormKind::rms_norm: return rms_norm_backward_in_place(g, x, w, rstd, rows, D);
    case NormKind::none: return;
  }
}

/// g[rows, D] := the backward of Norm with its scale rstd held constant, applied to g (serial;
/// GIM's frozen norm statistics).
template <class T>
void norm_backward_frozen_in_place(NormKind kind, T* g, const T* w, const T* rstd, std::size_t rows, std::size_t D) {
  if (kind == NormKind::none) return;
  for (std::size_t r = 0; r < rows; ++r) {
    auto gr = vec(g + r * D, D);
    const Eigen::Array<T, Eigen::Dynamic, 1> gw = gr * vec(w, D);
    if (kind == NormKind::layer_norm) gr = rstd[r] * (gw - gw.mean());
    else gr = rstd[r] * gw;
  }
}

/// dw, db [D] += the parameter gradients for dy (either may be null; an RMS norm has no db).
template <class T>
void norm_backward_params(NormKind kind, const T* dy, const T* x, const T* mean, const T* rstd, T* dw, T* db, std::size_t rows,
                          std::size_t D) {
  switch (kind) {
    case NormKind::layer_norm: return layer_norm_backward_params(dy, x, mean, rstd, dw, db, rows, D);
    case NormKind::rms_norm: return rms_norm_backward_params(dy, x, rstd, dw, rows, D);
    case NormKind::none: return;
  }
}

/// QK norm (Qwen3; Dehghani et al. 2023, section 3.1): RMS-normalises, in place, the 2H head
/// vectors (each d_head wide) of one row of q | k, with the gains w_q, w_k [d_head]; rstd [2H].
template <class T>
void qk_rms_norm_row(T* qk, const T* w_q, const T* w_k, std::size_t n_heads, std::size_t dh, T eps, T* rstd) {
  for (std::size_t j = 0; j < 2 * n_heads; ++j) {
    auto x = vec(qk + j * dh, dh);
    const T s = T(1) / std::sqrt(x.square().mean() + eps);
    rstd[j] = s;
    x = x * s * vec(j < n_heads ? w_q : w_k, dh);
  }
}

/// The QK norm of every row of qkv [rows, ld] (q | k | v, ld = 3 H d_head), in place; rstd [rows, 2H].
template <class T>
void qk_rms_norm_forward(std::size_t rows, std::size_t ld, std::size_t H, std::size_t dh, const T* w_q, const T* w_k, T eps,
                         T* qkv, T* rstd) {
  parallel_items(rows, 2 * H * dh, [&](std::size_t r) { qk_rms_norm_row(qkv + r * ld, w_q, w_k, H, dh, eps, rstd + r * 2 * H); });
}

/// The QK norm's backward (the RMS norm's, per head vector; v passes through): dx [rows, ld] +=,
/// dw_q, dw_k [d_head] += (summed serially, rows then heads). Any output may be null.
template <class T>
void qk_rms_norm_backward(std::size_t rows, std::size_t ld, std::size_t H, std::size_t dh, const T* x, const T* dy, const T* w_q,
                          const T* w_k, const T* rstd, T* dx, T* dw_q, T* dw_k) {
  if (dx)
    parallel_items(rows, ld, [&](std::size_t r) {
      for (std::size_t j = 0; j < 2 * H; ++j) {
        const std::size_t at = r * ld + j * dh;
        const T s = rstd[r * 2 * H + j];
        auto xhat = vec(x + at, dh) * s;
        auto g = vec(dy + at, dh) * vec(j < H ? w_q : w_k, dh);
        const T gx_mean = (g * xhat).mean();
        vec(dx + at, dh) += s * (g - xhat * gx_mean);
      }
      vec(dx + r * ld + 2 * H * dh, H * dh) += vec(dy + r * ld + 2 * H * dh, H * dh);
    });
  for (std::size_t which = 0; which < 2; ++which) {
    T* dw = which == 0 ? dw_q : dw_k;
    if (!dw) continue;
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t h = 0; h < H; ++h) {
        const std::size_t at = r * ld + (which * H + h) * dh;
        vec(dw, dh) += vec(dy + at, dh) * vec(x + at, dh) * rstd[r * 2 * H + which * H + h];
      }
  }
}

}  // namespace circuitry::cpu
