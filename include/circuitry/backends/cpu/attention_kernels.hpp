#pragma once
// The CPU backend's attention kernels. q, k and v are read in place from the fused projection
// qkv [B, P, 3 D] (columns q | k | v, D = H d_head, head h at columns h d_head of each block):
//   S = scale q_bh k_bh^T (scale 1 / sqrt(d_head) unless the shape says otherwise), with a soft cap
//   c: S = c tanh(S / c) (Gemma 2)
//   pattern[b, h] = softmax(S + mask)                                [B, H, P, P]
//   z[b, :, h]    = pattern[b, h] v_bh                               [B, P, H, d_head]
// Softmax backward: dS = A * (dA - rowsum(dA * A)); masked entries have A = 0, so dS = 0. The soft
// cap's backward multiplies by 1 - tanh^2(S_raw / c), S_raw recomputed from q and k.
// Every (sequence, head) pair is one task on the thread pool, so results do not depend on the
// thread count.
#include <cmath>
#include <vector>

#include <Eigen/Core>

#include "circuitry/backends/kernel_args.hpp"
#include "circuitry/core/error.hpp"
#include "circuitry/backends/cpu/gemm.hpp"
#include "circuitry/backends/cpu/vector_kernels.hpp"

namespace circuitry::cpu {

namespace detail {
template <class T>
T score_scale(const AttentionShape& s) {
  return s.scores.scale != 0 ? static_cast<T>(s.scores.scale) : T(1) / std::sqrt(T(s.dh));
}
/// Scores [begin, end) of one row: c tanh(x / c) in place.
template <class T>
void soft_cap(T* row, std::size_t begin, std::size_t end, double cap) {
  const T c = static_cast<T>(cap);
  for (std::size_t j = begin; j < end; ++j) row[j] = c * std::tanh(row[j] / c);
}
/// Softmax of row[begin, end) in place; the rest of the row's P entries set to 0.
template <class T>
void masked_softmax(T* row, std::size_t begin, std::size_t end, std::size_t P) {
  T mx = row[begin];
  for (std::size_t j = begin + 1; j < end; ++j) mx = std::max(mx, row[j]);
  T sum = 0;
  for (std::size_t j = begin; j < end; ++j) sum += (row[j] = std::exp(row[j] - mx));
  for (std::size_t j = begin; j < end; ++j) row[j] /= sum;
  for (std::size_t j = 0; j < begin; ++j) row[j] = 0;
  for (std::size_t j = end; j < P; ++j) row[j] = 0;
}
}  // namespace detail

/// qkv [B, P, 3D] -> pattern [B, H, P, P] (row i attends to the keys the mask allows; the
/// others are 0).
template <class T>
void attention_pattern_forward(const AttentionShape& s, const KeyMask& mask, const T* qkv, T* pattern) {
  const std::size_t P = s.P, H = s.H, dh = s.dh, D = s.D(), ld = s.ld();
  const T scale = detail::score_scale<T>(s);
  parallel_items(s.B * H, P * P * dh, [&](std::size_t bh) {
    const std::size_t b = bh / H, h = bh % H;
    const T* q = qkv + b * P * ld + h * dh;
    const T* k = q + D;
    T* A = pattern + bh * P * P;
    gemm<T>(Trans::No, Trans::Yes, P, P, dh, scale, q, ld, k, ld, T(0), A, P);
    for (std::size_t i = 0; i < P; ++i) {
      const std::size_t begin = mask.begin(i), end = mask.end(b, i, P);
      if (s.scores.softcap != 0) detail::soft_cap(A + i * P, begin, end, s.scores.softcap);
      detail::masked_softmax(A + i * P, begin, end, P);
    }
  });
}

/// dqkv's q and k blocks [B, P, 3D] += the pattern's backward for d pattern [B, H, P, P];
/// scratch [B, H, P, P] receives dS.
template <class T>
void attention_pattern_backward(const AttentionShape& s, const KeyMask& mask, const T* qkv, const T* pattern, const T* dpattern,
                                T* dqkv, T* scratch) {
  const std::size_t P = s.P, H = s.H, dh = s.dh, D = s.D(), ld = s.ld();
  const T scale = detail::score_scale<T>(s);
  const double cap = s.scores.softcap;
  parallel_items(s.B * H, P * P * dh, [&](std::size_t bh) {
    const std::size_t b = bh / H, h = bh % H;
    const T* A = pattern + bh * P * P;
    const T* dA = dpattern + bh * P * P;
    T* dS = scratch + bh * P * P;
    const T* q = qkv + b * P * ld + h * dh;
    const T* k = q + D;
    if (cap != 0) gemm<T>(Trans::No, Trans::Yes, P, P, dh, scale, q, ld, k, ld, T(0), dS, P);  // S_raw, for the cap's slope
    for (std::size_t i = 0; i < P; ++i) {
      const std::size_t begin = mask.begin(i), end = mask.end(b, i, P);
      T dot = 0;
      for (std::size_t j = begin; j < end; ++j) dot += dA[i * P + j] * A[i * P + j];
      for (std::size_t j = 0; j < P; ++j) {
        T slope = T(1);  // d capped / d raw
        if (cap != 0 && begin <= j && j < end) {
          const T t = std::tanh(dS[i * P + j] / static_cast<T>(cap));
          slope = T(1) - t * t;
        }
        dS[i * P + j] = begin <= j && j < end ? scale * A[i * P + j] * (dA[i * P + j] - dot) * slope : T(0);
      }
    }
    T* dq = dqkv + b * P * ld + h * dh;
    T* dk = dq + D;
    gemm<T>(Trans::No, Trans::No, P, dh, P, T(1), dS, P, k, ld, T(1), dq, ld);
    gemm<T>(Trans::Yes, Trans::No, P, dh, P, T(1), dS, P, q, ld, T(1), dk, ld);
  });
}

/// pattern [B, H, P, P], qkv [B, P, 3D] -> z [B, P, H, d_head].
template <class T>
void attention_mix_forward(const AttentionShape& s, const T* pattern, const T* qkv, T* z) {
  const std::size_t P = s.P, H = s.H, dh = s.dh, D = s.D(), ld = s.ld();
  parallel_items(s.B * H, P * P * dh, [&](std::size_t bh) {
    const std::size_t b = bh / H, h = bh % H;
    gemm<T>(Trans::No, Trans::No, P, dh, P, T(1), pattern + bh * P * P, P, qkv + b * P * ld + 2 * D + h * dh, ld, T(0),
            z + b * P * D + h * dh, D);
  });
}

/// The mix's backward for dz [B, P, H, d_head]: dpattern += dz v^T, dqkv's v block += A^T dz
/// (either output may be null).
template <class T>
void attention_mix_backward(const AttentionShape& s, const T* pattern, const T* qkv, const T* dz, T* dpattern, T* dqkv) {
  const std::size_t P = s.P, H = s.H, dh = s.dh, D = s.D(), ld = s.ld();
  parallel_items(s.B * H, P * P * dh, [&](std::size_t bh) {
    const std::size_t b = bh / H, h = bh % H;
    const T* dzb = dz + b * P * D + h * dh;
    if (dpattern)
      gemm<T>(Trans::No, Trans::Yes, P, P, dh, T(1), dzb, D, qkv + b * P * ld + 2 * D + h * dh, ld, T(1), dpattern + bh * P * P, P);
    if (dqkv) gemm<T>(Trans::Yes, Trans::No, P, dh, P, T(1), pattern + bh * P * P, P, dzb, D, T(1), dqkv + b * P * ld + 2 * D + h * dh, ld);
  });
}

/// Forward only, for a run that needs only some query rows (the last layer when only the
/// readout rows' logits are wanted): query row rows[i] (= b * P + t, sequence b) attends to the
/// keys the mask allows (causal: 0..t) of its own sequence.
///   qkv [B, P, 3D] -> z [R, D] (heads side by side, as z of the full op)
template <class T>
void attention_rows(const AttentionShape& s, const KeyMask& mask, const std::vector<std::size_t>& rows, const T* qkv, T* z) {
  const std::size_t P = s.P, H = s.H, dh = s.dh, D = s.D(), ld = s.ld(), R = rows.size();
  const T scale = detail::score_scale<T>(s);
  require(R == 0 || rows.back() < s.B * P, "attention_rows: a row is outside the batch");
  parallel_items(R * H, P * dh, [&](std::size_t ih) {
    const std::size_t i = ih / H, h = ih % H;
    const std::size_t b = rows[i] / P, t = rows[i] - b * P;
    const std::size_t first_key = mask.begin(t), n_keys = mask.end(b, t, P) - first_key;
    const T* q = qkv + rows[i] * ld + h * dh;
    const T* keys = qkv + (b * P + first_key) * ld + D + h * dh;
    const T* values = keys + D;
    // [n_keys] attention weights: scale * K q, then softmax. An Eigen-owned (aligned) buffer, so
    // the vectorised exp and sum take the same path whatever malloc returns (bit-reproducible).
    Eigen::Matrix<T, Eigen::Dynamic, 1> scores(static_cast<Eigen::Index>(n_keys));
    scores.noalias() = scale * matrix(keys, n_keys, dh, ld) * Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>(q, static_cast<Eigen::Index>(dh));
    if (s.scores.softcap != 0) detail::soft_cap(scores.data(), 0, n_keys, s.scores.softcap);
    const T mx = scores.maxCoeff();
    scores = (scores.array() - mx).exp().matrix();
    scores /= scores.sum();
    Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(z + i * D + h * dh, static_cast<Eigen::Index>(dh)).noalias() =
        scores.transpose() * matrix(values, n_keys, dh, ld);
  });
}

}  // namespace circuitry::cpu
