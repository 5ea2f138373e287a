#pragma once
// The CPU backend: host arenas, and the kernels of this folder (Eigen, oneDNN and the few-rows
// kernel behind gemm, the thread pool of core/parallel.hpp). It is what the Backend concept
// (backends/backend.hpp) names, one static function per kernel; the tape ops reach the
// kernels only through it (ops/context.hpp), and the backend parity test
// (tests/test_backend_ops.cpp) checks every other backend's kernels against these.
#include <string_view>
#include <vector>

#include "circuitry/backends/kernel_args.hpp"
#include "circuitry/backends/cpu/activation_kernels.hpp"
#include "circuitry/backends/cpu/attention_kernels.hpp"
#include "circuitry/backends/cpu/gemm.hpp"
#include "circuitry/backends/cpu/norm_kernels.hpp"
#include "circuitry/backends/cpu/post_norm_kernels.hpp"
#include "circuitry/backends/cpu/rotary_kernels.hpp"
#include "circuitry/backends/cpu/softmax_kernels.hpp"
#include "circuitry/backends/cpu/sparse_product.hpp"
#include "circuitry/backends/cpu/vector_kernels.hpp"
#include "circuitry/core/arena.hpp"

namespace circuitry {

struct CpuBackend {
  static constexpr std::string_view name = "cpu";
  /// Memory: the host arena (blocks reused across runs).
  using Arena = circuitry::Arena;

  /// Host values to the backend's memory and back (the host's memory is the backend's here).
  template <class T> static void to_device(std::size_t n, const T* host, T* device) { cpu::copy(n, host, device); }
  template <class T> static void to_host(std::size_t n, const T* device, T* host) { cpu::copy(n, device, host); }

  // GEMM: C[M, N] = alpha op(A) op(B) + beta C, row-major with leading dimensions.
  template <class T>
  static void gemm(Trans ta, Trans tb, std::size_t M, std::size_t N, std::size_t K, T alpha, const T* A, std::size_t lda,
                   const T* B, std::size_t ldb, T beta, T* C, std::size_t ldc) {
    circuitry::gemm<T>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  /// C[M, N] = A[M, K] B[N, K]^T for a very long K.
  template <class T>
  static void gemm_nt_long_inner(std::size_t M, std::size_t N, std::size_t K, const T* A, const T* B, T* C) {
    circuitry::gemm_nt_long_inner(M, N, K, A, B, C);
  }
  /// out [M, K] += a [M, N] w [N, K], a mostly zero columns.
  template <class T>
  static void add_product_sparse_lhs(std::size_t M, std::size_t N, std::size_t K, const T* a, const T* w, T* out) {
    cpu::add_product_sparse_lhs(M, N, K, a, w, out);
  }

  // Vectors and rows.
  template <class T> static void copy(std::size_t n, const T* x, T* y) { cpu::copy(n, x, y); }
  template <class T> static void fill_zero(std::size_t n, T* y) { cpu::fill_zero(n, y); }
  template <class T> static void axpy(std::size_t n, T alpha, const T* x, T* y) { cpu::axpy(n, alpha, x, y); }
  template <class T> static void add(std::size_t n, const T* a, const T* b, T* y) { cpu::add(n, a, b, y); }
  template <class T> static void subtract(std::size_t n, const T* a, const T* b, T* y) { cpu::subtract(n, a, b, y); }
  template <class T> static void scale(std::size_t n, T alpha, const T* x, T* y) { cpu::scale(n, alpha, x, y); }
  template <class T> static void exp(std::size_t n, const T* x, T* y) { cpu::exp(n, x, y); }
  template <class T> static void mul_add(std::size_t n, const T* a, const T* b, T* y) { cpu::mul_add(n, a, b, y); }
  template <class T> static T sum(std::size_t n, const T* x) { return cpu::sum(n, x); }
  template <class T>
  static void add_broadcast(std::size_t n, std::size_t period, const T* a, const T* b, T* y) { cpu::add_broadcast(n, period, a, b, y); }
  template <class T>
  static void mul_broadcast(std::size_t n, std::size_t period, const T* a, const T* b, T* y) { cpu::mul_broadcast(n, period, a, b, y); }
  template <class T>
  static void mul_broadcast_backward(std::size_t n, std::size_t period, const T* dy, const T* a, const T* b, T* da, T* db) {
    cpu::mul_broadcast_backward(n, period, dy, a, b, da, db);
  }
  template <class T> static void sum_repeats(std::size_t n, std::size_t period, const T* dy, T* db) { cpu::sum_repeats(n, period, dy, db); }
  template <class T> static void row_sums(std::size_t rows, std::size_t N, const T* x, T* y) { cpu::row_sums(rows, N, x, y); }
  template <class T> static void add_to_rows(std::size_t rows, std::size_t N, const T* dy, T* dx) { cpu::add_to_rows(rows, N, dy, dx); }
  template <class T, class Index>
  static void gather_rows(std::size_t R, std::size_t D, const Index* index, const T* src, T* dst) { cpu::gather_rows(R, D, index, src, dst); }
  template <class T, class Index>
  static void scatter_add_rows(std::size_t R, std::size_t D, const Index* index, const T* src, T* dst) {
    cpu::scatter_add_rows(R, D, index, src, dst);
  }
  template <class T>
  static void copy_blocks(std::size_t outer, std::size_t block, const T* src, std::size_t src_stride, T* dst, std::size_t dst_stride) {
    cpu::copy_blocks(outer, block, src, src_stride, dst, dst_stride);
  }
  template <class T>
  static void add_blocks(std::size_t outer, std::size_t block, const T* src, std::size_t src_stride, T* dst, std::size_t dst_stride) {
    cpu::add_blocks(outer, block, src, src_stride, dst, dst_stride);
  }
  template <class T> static void add_parts(std::size_t parts, std::size_t n, const T* x, T* y) { cpu::add_parts(parts, n, x, y); }

  // Norms (mean, rstd [rows]).
  template <class T>
  static void norm_forward(NormKind kind, const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, std::size_t rows,
                           std::size_t D, T eps) {
    cpu::norm_forward(kind, x, w, b, y, mean, rstd, rows, D, eps);
  }
  template <class T>
  static void norm_backward_input(NormKind kind, const T* dy, const T* x, const T* w, const T* mean, const T* rstd, T* dx,
                                  std::size_t rows, std::size_t D) {
    cpu::norm_backward_input(kind, dy, x, w, mean, rstd, dx, rows, D);
  }
  template <class T>
  static void norm_backward_in_place(NormKind kind, T* g, const T* x, const T* w, const T* mean, const T* rstd, std::size_t rows,
                                     std::size_t D) {
    cpu::norm_backward_in_place(kind, g, x, w, mean, rstd, rows, D);
  }
  template <class T>
  static void norm_backward_frozen_in_place(NormKind kind, T* g, const T* w, const T* rstd, std::size_t rows, std::size_t D) {
    cpu::norm_backward_frozen_in_place(kind, g, w, rstd, rows, D);
  }
  template <class T>
  static void norm_backward_params(NormKind kind, const T* dy, const T* x, const T* mean, const T* rstd, T* dw, T* db,
                                   std::size_t rows, std::size_t D) {
    cpu::norm_backward_params(kind, dy, x, mean, rstd, dw, db, rows, D);
  }
  template <class T>
  static void qk_rms_norm_forward(std::size_t rows, std::size_t ld, std::size_t H, std::size_t dh, const T* w_q, const T* w_k, T eps,
                                  T* qkv, T* rstd) {
    cpu::qk_rms_norm_forward(rows, ld, H, dh, w_q, w_k, eps, qkv, rstd);
  }
  template <class T>
  static void qk_rms_norm_backward(std::size_t rows, std::size_t ld, std::size_t H, std::size_t dh, const T* x, const T* dy,
                                   const T* w_q, const T* w_k, const T* rstd, T* dx, T* dw_q, T* dw_k) {
    cpu::qk_rms_norm_backward(rows, ld, H, dh, x, dy, w_q, w_k, rstd, dx, dw_q, dw_k);
  }

  // A norm after the heads' sum, split into the heads' shares (x, y, dy, dx: H blocks [rows, D] at stride).
  template <class T>
  static void post_norm_shares_forward(std::size_t H, std::size_t rows, std::size_t D, std::size_t stride, const T* x, const T* w,
                                       T eps, T* y, T* rstd) {
    cpu::post_norm_shares_forward(H, rows, D, stride, x, w, eps, y, rstd);
  }
  template <class T>
  static void post_norm_shares_backward(std::size_t H, std::size_t rows, std::size_t D, std::size_t stride, const T* x, const T* w,
                                        const T* rstd, const T* dy, T* dx, T* dw) {
    cpu::post_norm_shares_backward(H, rows, D, stride, x, w, rstd, dy, dx, dw);
  }

  // Activations.
  template <class T>
  static void activation_forward(ActivationKind kind, std::size_t n, const T* x, T* y) { cpu::activation_forward(kind, n, x, y); }
  template <class T>
  static void activation_backward(ActivationKind kind, std::size_t n, const T* x, const T* dy, T* dx) {
    cpu::activation_backward(kind, n, x, dy, dx);
  }
  template <class T>
  static void gated_activation_forward(ActivationKind kind, std::size_t rows, std::size_t F, const T* x, T* y) {
    cpu::gated_activation_forward(kind, rows, F, x, y);
  }
  template <class T>
  static void gated_activation_backward(ActivationKind kind, std::size_t rows, std::size_t F, const T* x, const T* dy, T* dx,
                                        T* scratch) {
    cpu::gated_activation_backward(kind, rows, F, x, dy, dx, scratch);
  }

  // Attention.
  template <class T>
  static void attention_pattern_forward(const AttentionShape& s, const KeyMask& mask, const T* qkv, T* pattern) {
    cpu::attention_pattern_forward(s, mask, qkv, pattern);
  }
  template <class T>
  static void attention_pattern_backward(const AttentionShape& s, const KeyMask& mask, const T* qkv, const T* pattern,
                                         const T* dpattern, T* dqkv, T* scratch) {
    cpu::attention_pattern_backward(s, mask, qkv, pattern, dpattern, dqkv, scratch);
  }
  template <class T>
  static void attention_mix_forward(const AttentionShape& s, const T* pattern, const T* qkv, T* z) {
    cpu::attention_mix_forward(s, pattern, qkv, z);
  }
  template <class T>
  static void attention_mix_backward(const AttentionShape& s, const T* pattern, const T* qkv, const T* dz, T* dpattern, T* dqkv) {
    cpu::attention_mix_backward(s, pattern, qkv, dz, dpattern, dqkv);
  }
  template <class T>
  static void attention_rows(const AttentionShape& s, const KeyMask& mask, const std::vector<std::size_t>& rows, const T* qkv, T* z) {
    cpu::attention_rows(s, mask, rows, qkv, z);
  }
  template <class T>
  static void rotate_half(std::size_t rows, std::size_t P, std::size_t ld, std::size_t n_vectors, std::size_t d_head,
                          std::size_t rot, const T* cos, const T* sin, bool inverse, T* x) {
    cpu::rotate_half(rows, P, ld, n_vectors, d_head, rot, cos, sin, inverse, x);
  }

  // The metric's log-softmax.
  template <class T>
  static void log_softmax_forward(std::size_t rows, std::size_t V, const T* x, T* y) { cpu::log_softmax_forward(rows, V, x, y); }
  template <class T>
  static void log_softmax_backward(std::size_t rows, std::size_t V, const T* y, const T* dy, T* dx) {
    cpu::log_softmax_backward(rows, V, y, dy, dx);
  }
};

}  // namespace circuitry
