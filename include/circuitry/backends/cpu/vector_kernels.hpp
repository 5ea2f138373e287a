#pragma once
// The CPU backend's vector and row kernels: copies, axpy and scaling, broadcast adds and
// products, row sums, gathers and scatters of rows, and the blocks a slice or a concatenation
// moves. Each is a plain loop over Eigen maps; sums run in an order fixed by the shapes alone,
// so results never depend on the thread count or on where a buffer lies.
#include <algorithm>
#include <cstddef>
#include <type_traits>

#include <Eigen/Core>

#include "circuitry/core/parallel.hpp"

namespace circuitry::cpu {

template <class T>
Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> vec(T* p, std::size_t n) {
  return {p, static_cast<Eigen::Index>(n)};
}
template <class T>
Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> vec(const T* p, std::size_t n) {
  return {p, static_cast<Eigen::Index>(n)};
}

/// The sum of vec(p, n), rounded the same wherever p lies. Eigen reduces a plain Map from its
/// first packet-aligned element (scalars before it, packets after), so the order of the
/// additions, and the rounding, would follow the address: heap layout, and even the length of
/// a path string, reached the results. An expression over the map has no address of its own
/// and is reduced from element 0 in an order fixed by n alone (x * 1 is exact).
template <class T>
T sum_any_alignment(const T* p, std::size_t n) {
  return (vec(p, n) * T(1)).sum();
}

/// y[n] = x.
template <class T>
void copy(std::size_t n, const T* x, T* y) {
  if (n) vec(y, n) = vec(x, n);
}

/// y[n] = 0.
template <class T>
void fill_zero(std::size_t n, T* y) {
  if (n) vec(y, n).setZero();
}

/// y[n] += alpha x.
template <class T>
void axpy(std::size_t n, T alpha, const T* x, T* y) {
  if (alpha == T(1)) vec(y, n) += vec(x, n);
  else if (alpha == T(-1)) vec(y, n) -= vec(x, n);
  else vec(y, n) += alpha * vec(x, n);
}

/// y[n] = a + b (in one pass; y may be a or b).
template <class T>
void add(std::size_t n, const T* a, const T* b, T* y) {
  vec(y, n) = vec(a, n) + vec(b, n);
}

/// y[n] = a - b (in one pass; y may be a or b).
template <class T>
void subtract(std::size_t n, const T* a, const T* b, T* y) {
  vec(y, n) = vec(a, n) - vec(b, n);
}

/// y[n] = alpha x (y may be x).
template <class T>
void scale(std::size_t n, T alpha, const T* x, T* y) {
  vec(y, n) = alpha * vec(x, n);
}

/// y[n] = a + b, b [period] repeated along a (period divides n).
template <class T>
void add_broadcast(std::size_t n, std::size_t period, const T* a, const T* b, T* y) {
  for (std::size_t r = 0; r < n; r += period) vec(y + r, period) = vec(a + r, period) + vec(b, period);
}

/// y[n] = a * b, b [period] repeated along a.
template <class T>
void mul_broadcast(std::size_t n, std::size_t period, const T* a, const T* b, T* y) {
  for (std::size_t r = 0; r < n; r += period) vec(y + r, period) = vec(a + r, period) * vec(b, period);
}

/// The backward of mul_broadcast: da[n] += dy * b, db[period] += sum over the repeats of dy * a
/// (in order); either output may be null.
template <class T>
void mul_broadcast_backward(std::size_t n, std::size_t period, const T* dy, const T* a, const T* b, T* da, T* db) {
  for (std::size_t r = 0; r < n; r += period) {
    if (da) vec(da + r, period) += vec(dy + r, period) * vec(b, period);
    if (db) vec(db, period) += vec(dy + r, period) * vec(a + r, period);
  }
}

/// db[period] += the sum of the n / period repeats of dy, in order (a broadcast's backward; a
/// bias's gradient).
template <class T>
void sum_repeats(std::size_t n, std::size_t period, const T* dy, T* db) {
  for (std::size_t r = 0; r < n; r += period) vec(db, period) += vec(dy + r, period);
}

/// y[n] = exp(x).
template <class T>
void exp(std::size_t n, const T* x, T* y) {
  vec(y, n) = vec(x, n).exp();
}

/// y[n] += a * b.
template <class T>
void mul_add(std::size_t n, const T* a, const T* b, T* y) {
  vec(y, n) += vec(a, n) * vec(b, n);
}

/// The sum of x[n] (rounded the same wherever x lies).
template <class T>
T sum(std::size_t n, const T* x) {
  return sum_any_alignment(x, n);
}

/// y[r] = sum of row r of x [rows, N].
template <class T>
void row_sums(std::size_t rows, std::size_t N, const T* x, T* y) {
  for (std::size_t r = 0; r < rows; ++r) y[r] = sum_any_alignment(x + r * N, N);
}

/// dx[r, :] += dy[r] for dx [rows, N].
template <class T>
void add_to_rows(std::size_t rows, std::size_t N, const T* dy, T* dx) {
  for (std::size_t r = 0; r < rows; ++r) vec(dx + r * N, N) += dy[r];
}

/// dst[i, :] = src[index[i], :] for i < R; rows D wide.
template <class T, class Index>
void gather_rows(std::size_t R, std::size_t D, const Index* index, const T* src, T* dst) {
  for (std::size_t i = 0; i < R; ++i) vec(dst + i * D, D) = vec(src + static_cast<std::size_t>(index[i]) * D, D);
}

/// dst[index[i], :] += src[i, :] for i < R, in order of i (repeated indices add up).
template <class T, class Index>
void scatter_add_rows(std::size_t R, std::size_t D, const Index* index, const T* src, T* dst) {
  for (std::size_t i = 0; i < R; ++i) vec(dst + static_cast<std::size_t>(index[i]) * D, D) += vec(src + i * D, D);
}

/// dst[o * dst_stride + j] = src[o * src_stride + j] for o < outer, j < block.
template <class T>
void copy_blocks(std::size_t outer, std::size_t block, const T* src, std::size_t src_stride, T* dst, std::size_t dst_stride) {
  for (std::size_t o = 0; o < outer; ++o) vec(dst + o * dst_stride, block) = vec(src + o * src_stride, block);
}

/// dst[o * dst_stride + j] += src[o * src_stride + j] for o < outer, j < block.
template <class T>
void add_blocks(std::size_t outer, std::size_t block, const T* src, std::size_t src_stride, T* dst, std::size_t dst_stride) {
  for (std::size_t o = 0; o < outer; ++o) vec(dst + o * dst_stride, block) += vec(src + o * src_stride, block);
}

/// y += sum_p x_p over `parts` buffers of n values each, x_p = x + p n: ranges of elements in
/// parallel, the parts added in order (the ports' gradients into the residual's).
template <class T>
void add_parts(std::size_t parts, std::size_t n, const T* x, T* y) {
  parallel_for(n, std::size_t{1} << 14, [&](std::size_t i0, std::size_t i1) {
    for (std::size_t p = 0; p < parts; ++p) vec(y + i0, i1 - i0) += vec(x + p * n + i0, i1 - i0);
  });
}

}  // namespace circuitry::cpu
