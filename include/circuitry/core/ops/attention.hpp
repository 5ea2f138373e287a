#pragma once
// Multi-head attention in two ops, so a hook can read or replace the pattern between them
// (TransformerLens' hook_pattern):
//   pattern[b, h] = softmax(q_bh k_bh^T / sqrt(d_head) + mask)     [B, H, P, P]
//   z[b, :, h]    = pattern[b, h] v_bh                               [B, P, H, d_head]
// q, k and v are read in place from the fused projection qkv [B, P, 3 H d_head] (columns
// q | k | v, head h at columns h*d_head..(h+1)*d_head of each block; H d_head need not be
// d_model). The mask is causal (row i sees keys 0..i) or bidirectional (every row sees the
// keys of its sequence's real positions 0..len_b - 1, so right-padding is never read).
// Softmax backward: dS = A * (dA - rowsum(dA * A)); masked entries have A = 0, so dS = 0.
#include <cmath>
#include <vector>

#include "circuitry/core/gemm.hpp"
#include "circuitry/core/ops/common.hpp"

namespace circuitry::ops {

namespace detail {
struct AttentionDims {
  std::size_t B, P, H, dh, D;  // D = H * dh, the width of each of the q, k, v blocks
};
template <class T>
AttentionDims attention_dims(const Var<T>& qkv, std::size_t n_heads) {
  require(qkv.shape.rank == 3 && qkv.shape[2] % 3 == 0, "attention: qkv must be [batch, pos, 3 H d_head], got " + qkv.shape.str());
  const std::size_t D = qkv.shape[2] / 3;
  require(n_heads > 0 && D % n_heads == 0, "attention: q width " + std::to_string(D) + " is not divisible by n_heads");
  return {qkv.shape[0], qkv.shape[1], n_heads, D / n_heads, D};
}
}  // namespace detail

/// Which keys a query row may attend to.
struct KeyMask {
  bool causal = true;
  /// Bidirectional only: per sequence, the number of real (unpadded) positions; empty = all P.
  std::vector<std::size_t> lengths;

  static KeyMask causal_mask() { return {}; }
  static KeyMask bidirectional(std::vector<std::size_t> lengths) { return {false, std::move(lengths)}; }
  /// Keys 0..end-1 are visible to query row i of sequence b.
  std::size_t end(std::size_t b, std::size_t i, std::size_t P) const {
    return causal ? i + 1 : (lengths.empty() ? P : lengths[b]);
  }
};

/// qkv [B, P, 3D] -> pattern [B, H, P, P] (row i attends to the keys the mask allows).
template <class Ctx, class T = typename Ctx::scalar>
Var<T> attention_pattern(const Ctx& ctx, const Var<T>& qkv, std::size_t n_heads, const KeyMask& mask) {
  const detail::AttentionDims dims = detail::attention_dims(qkv, n_heads);
  const std::size_t B = dims.B, P = dims.P, H = dims.H, dh = dims.dh, D = dims.D;  // plain names: lambdas capture them
  require(mask.causal || mask.lengths.empty() || mask.lengths.size() == B, "attention: one key length per sequence");
  const T scale = T(1) / std::sqrt(T(dh));
  Var<T> pattern = ctx.output({B, H, P, P}, qkv.needs_grad());
  const std::size_t ld = 3 * D;
  parallel_items(B * H, P * P * dh, [&](std::size_t bh) {
      const std::size_t b = bh / H, h = bh % H;
      const T* q = qkv.value + b * P * ld + h * dh;
      const T* k = q + D;
      T* A = pattern.value + (b * H + h) * P * P;
      gemm<T>(Trans::No, Trans::Yes, P, P, dh, scale, q, ld, k, ld, T(0), A, P);
      for (std::size_t i = 0; i < P; ++i) {
        T* row = A + i * P;
        const std::size_t end = mask.end(b, i, P);
        T mx = row[0];
        for (std::size_t j = 1; j < end; ++j) mx = std::max(mx, row[j]);
        T sum = 0;
        for (std::size_t j = 0; j < end; ++j) sum += (row[j] = std::exp(row[j] - mx));
        for (std::size_t j = 0; j < end; ++j) row[j] /= sum;
        for (std::size_t j = end; j < P; ++j) row[j] = 0;
      }
    });
  if constexpr (Ctx::records) {
    if (pattern.needs_grad())
      ctx.on_backward([ctx, qkv, pattern, B, P, H, dh, D, scale, ld, mask] {
        const T* dA_all = ctx.grad(pattern);
        T* dqkv = ctx.grad(qkv);
        T* dS_all = ctx.arena().template alloc<T>(B * H * P * P);
        parallel_items(B * H, P * P * dh, [&](std::size_t bh) {
            const std::size_t b = bh / H, h = bh % H;
            const T* A = pattern.value + bh * P * P;
            const T* dA = dA_all + bh * P * P;
            T* dS = dS_all + bh * P * P;
            for (std::size_t i = 0; i < P; ++i) {
              const std::size_t end = mask.end(b, i, P);
              T dot = 0;
              for (std::size_t j = 0; j < end; ++j) dot += dA[i * P + j] * A[i * P + j];
              for (std::size_t j = 0; j < P; ++j) dS[i * P + j] = j < end ? scale * A[i * P + j] * (dA[i * P + j] - dot) : T(0);
            }
            const T* q = qkv.value + b * P * ld + h * dh;
            const T* k = q + D;
            T* dq = dqkv + b * P * ld + h * dh;
            T* dk = dq + D;
            gemm<T>(Trans::No, Trans::No, P, dh, P, T(1), dS, P, k, ld, T(1), dq, ld);
            gemm<T>(Trans::Yes, Trans::No, P, dh, P, T(1), dS, P, q, ld, T(1), dk, ld);
          });
      });
  }
  return pattern;
}

/// pattern [B, H, P, P], qkv [B, P, 3D] -> z [B, P, H, d_head].
template <class Ctx, class T = typename Ctx::scalar>
Var<T> attention_mix(const Ctx& ctx, const Var<T>& pattern, const Var<T>& qkv, std::size_t n_heads) {
  const detail::AttentionDims dims = detail::attention_dims(qkv, n_heads);
  const std::size_t B = dims.B, P = dims.P, H = dims.H, dh = dims.dh, D = dims.D;  // plain names: lambdas capture them
  require(pattern.shape == Shape({B, H, P, P}), "attention_mix: pattern must be " + Shape({B, H, P, P}).str());
  Var<T> z = ctx.output({B, P, H, dh}, any_grad(pattern, qkv));
  const std::size_t ld = 3 * D;
  parallel_items(B * H, P * P * dh, [&](std::size_t bh) {
    const std::size_t b = bh / H, h = bh % H;
    gemm<T>(Trans::No, Trans::No, P, dh, P, T(1), pattern.value + bh * P * P, P, qkv.value + b * P * ld + 2 * D + h * dh,
            ld, T(0), z.value + b * P * D + h * dh, D);
  });
  if constexpr (Ctx::records) {
    if (z.needs_grad())
      ctx.on_backward([ctx, pattern, qkv, z, B, P, H, dh, D, ld] {
        const T* dz = ctx.grad(z);
        T* dA = pattern.needs_grad() ? ctx.grad(pattern) : nullptr;
        T* dqkv = qkv.needs_grad() ? ctx.grad(qkv) : nullptr;
        parallel_items(B * H, P * P * dh, [&](std::size_t bh) {
            const std::size_t b = bh / H, h = bh % H;
            const T* A = pattern.value + bh * P * P;
            const T* dzb = dz + b * P * D + h * dh;
            if (dA)
              gemm<T>(Trans::No, Trans::Yes, P, P, dh, T(1), dzb, D, qkv.value + b * P * ld + 2 * D + h * dh, ld, T(1),
                      dA + (b * H + h) * P * P, P);
            if (dqkv) gemm<T>(Trans::Yes, Trans::No, P, dh, P, T(1), A, P, dzb, D, T(1), dqkv + b * P * ld + 2 * D + h * dh, ld);
          });
      });
  }
  return z;
}

}  // namespace circuitry::ops

namespace circuitry::ops {

/// Forward-only kernel for a run that needs only some query rows (the last layer when only
/// the readout rows' logits are wanted): query row rows[i] (= b * P + t, sequence b) attends to
/// the keys the mask allows (causal: 0..t) of its own sequence.
///   qkv [B, P, 3D] (q | k | v, D = H d_head) -> z [rows, D] (heads side by side, as z of the full op)
template <class T>
void attention_rows(const T* qkv, std::size_t B, std::size_t P, std::size_t D, std::size_t n_heads,
                    const std::vector<std::size_t>& rows, const KeyMask& mask, T* z) {
  const std::size_t dh = D / n_heads, ld = 3 * D, R = rows.size();
  const T scale = T(1) / std::sqrt(T(dh));
  require(R == 0 || rows.back() < B * P, "attention_rows: a row is outside the batch");
  parallel_items(R * n_heads, P * dh, [&](std::size_t ih) {
      const std::size_t i = ih / n_heads, h = ih % n_heads;
      const std::size_t b = rows[i] / P;
      const std::size_t n_keys = mask.end(b, rows[i] - b * P, P);
      const T* q = qkv + rows[i] * ld + h * dh;
      const T* keys = qkv + b * P * ld + D + h * dh;
      const T* values = keys + D;
      // [n_keys] attention weights: scale * K q, then softmax. An Eigen-owned (aligned) buffer, so
      // the vectorised exp and sum take the same path whatever malloc returns (bit-reproducible).
      Eigen::Matrix<T, Eigen::Dynamic, 1> scores(static_cast<Eigen::Index>(n_keys));
      scores.noalias() = scale * matrix(keys, n_keys, dh, ld) * Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>(q, static_cast<Eigen::Index>(dh));
      const T mx = scores.maxCoeff();
      scores = (scores.array() - mx).exp().matrix();
      scores /= scores.sum();
      Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(z + i * D + h * dh, static_cast<Eigen::Index>(dh)).noalias() =
          scores.transpose() * matrix(values, n_keys, dh, ld);
    });
}

}  // namespace circuitry::ops
