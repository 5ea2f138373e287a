#pragma once
// Row-major GEMM through Eigen maps: C = alpha op(A) op(B) + beta C, with leading
// dimensions so strided slices (one head's columns of a [rows, 3 d_model] buffer) need
// no copy. Large products run on the thread pool (core/parallel.hpp) in a grid of blocks fixed
// by the shape, so the result does not depend on the thread count. Each block goes through
// oneDNN's dnnl_sgemm when it is large and oneDNN is there, through the few-rows kernel
// (backends/cpu/gemm_few_rows.hpp) when it is a few rows against a long transposed B, else through Eigen.
#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "circuitry/backends/kernel_args.hpp"
#include "circuitry/backends/cpu/gemm_few_rows.hpp"
#include "circuitry/backends/cpu/gemm_precision.hpp"
#include "circuitry/core/parallel.hpp"

namespace circuitry {

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MatrixMap = Eigen::Map<RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using ConstMatrixMap = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

/// A rows x cols row-major view with leading dimension ld (>= cols).
template <class T>
MatrixMap<T> matrix(T* p, std::size_t rows, std::size_t cols, std::size_t ld) {
  return MatrixMap<T>(p, static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols),
                      Eigen::OuterStride<>(static_cast<Eigen::Index>(ld)));
}
template <class T>
ConstMatrixMap<T> matrix(const T* p, std::size_t rows, std::size_t cols, std::size_t ld) {
  return ConstMatrixMap<T>(p, static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols),
                           Eigen::OuterStride<>(static_cast<Eigen::Index>(ld)));
}

namespace detail {

/// The grid gemm() splits C into. Eigen's own threading divides a product among the threads
/// and recomputes its cache blocking (the k-panels, and which kernel computes which element)
/// for their number, so C's rounding followed --threads. Here Eigen (or oneDNN) stays
/// single-threaded and the product is cut into blocks that depend on the shape alone; pool
/// threads pick up whole blocks, so every element is computed the same way whatever the thread
/// count.
/// - Tall products: at most kGemmBlockCols columns, and as many rows (a multiple of 16, at least
///   kGemmMinBlockRows) as make about kGemmBlockWork multiply-adds.
/// - Products with fewer than 2 kGemmMinBlockRows rows (a batch cut into parts by a memory budget,
///   a few readout rows) would get one uneven row cut (176 rows: 128 + 48, one thread idle for a
///   third of the time) or none, so they are cut along the columns instead, into up to
///   kGemmColumnParts blocks of equal width (a multiple of 16, at least kGemmMinBlockCols) of at
///   least kOnednnMinWork multiply-adds each: equal shares for the threads, and each block packs
///   only its own columns of B (a row cut packs all of B once per block).
inline constexpr std::size_t kGemmBlockCols = 1024, kGemmMinBlockRows = 128;
inline constexpr std::size_t kGemmColumnParts = 32, kGemmMinBlockCols = 96;
inline constexpr std::size_t kGemmBlockWork = std::size_t{1} << 21;
/// The smallest block (multiply-adds) that goes through dnnl_sgemm when oneDNN is there.
inline constexpr std::size_t kOnednnMinWork = std::size_t{1} << 22;

struct GemmGrid {
  std::size_t block_rows, block_cols;
};

inline GemmGrid gemm_grid(std::size_t M, std::size_t N, std::size_t K) {
  const std::size_t work = M * N * K;
  if (M < 2 * kGemmMinBlockRows) {
    const std::size_t parts = std::clamp<std::size_t>(work / kOnednnMinWork, 1, kGemmColumnParts);
    const std::size_t cols = std::max(kGemmMinBlockCols, ((N + parts - 1) / parts + 15) / 16 * 16);
    return {std::max<std::size_t>(M, 1), std::min(N, cols)};
  }
  const std::size_t cols = std::min(N, kGemmBlockCols);
  const std::size_t rows = (kGemmBlockWork / std::max<std::size_t>(1, cols * K) + 15) / 16 * 16;
  return {std::min(M, std::max(kGemmMinBlockRows, rows)), cols};
}

inline void keep_eigen_single_threaded() {
  static const bool once = (Eigen::setNbThreads(1), true);
  (void)once;
}

}  // namespace detail

/// C[M, N] = alpha * op(A) * op(B) + beta * C, where op(A) is [M, K] and op(B) is [K, N].
/// A is stored [M, K] (or [K, M] when transposed) with leading dimension lda; same for B.
/// Bit-identical for any thread count (see detail::gemm_grid).
template <class T>
void gemm(Trans ta, Trans tb, std::size_t M, std::size_t N, std::size_t K, T alpha, const T* A,
          std::size_t lda, const T* B, std::size_t ldb, T beta, T* C, std::size_t ldc) {
  auto c = matrix(C, M, N, ldc);
  if (M == 0 || N == 0 || K == 0) {
    if (beta == T(0)) c.setZero();
    else if (beta != T(1)) c *= beta;
    return;
  }
  if (beta != T(0) && beta != T(1)) {  // scaled once here, then accumulated into
    c *= beta;
    beta = T(1);
  }
  // beta = 0: the blocks write C without reading it (BLAS's rule: C's old values, NaN
  // included, do not matter), which saves a pass over C that zeroing it first would take.
  const bool overwrite = beta == T(0);
  detail::keep_eigen_single_threaded();
  const bool at = ta == Trans::Yes, bt = tb == Trans::Yes;
  const detail::GemmGrid grid = detail::gemm_grid(M, N, K);
  const std::size_t block_rows = grid.block_rows, block_cols = grid.block_cols;
  const std::size_t row_blocks = (M + block_rows - 1) / block_rows, col_blocks = (N + block_cols - 1) / block_cols;
  const std::size_t blocks = row_blocks * col_blocks;
#if defined(CIRCUITRY_WITH_ONEDNN)
  if constexpr (std::is_same_v<T, float>)
    if (gemm_precision() == GemmPrecision::bfloat16 && M * N * K >= bfloat16_min_work()) {
      if (overwrite) c.setZero();  // the bfloat16 blocks accumulate into C
      return backends::onednn::gemm_bf16(at, bt, M, N, K, alpha, A, lda, B, ldb, C, ldc, block_rows, block_cols);
    }
#endif
  // A few rows against a long transposed B (the readout rows' logits against W_U).
  const bool few_rows = !at && bt && detail::takes_few_rows_kernel(M, N, K);
  // C[i0.., j0..] (+)= alpha op(A)[i0.., :] op(B)[:, j0..] for one block of the grid.
  auto block = [&](std::size_t t) {
    const std::size_t i0 = t / col_blocks * block_rows, j0 = t % col_blocks * block_cols;
    const std::size_t m = std::min(block_rows, M - i0), n = std::min(block_cols, N - j0);
    if constexpr (std::is_same_v<T, float> && detail::kHasFewRowsKernel)
      if (few_rows)
        return detail::gemm_few_rows_nt(m, n, K, alpha, A + i0 * lda, lda, B + j0 * ldb, ldb, overwrite, C + i0 * ldc + j0, ldc);
#if defined(CIRCUITRY_WITH_ONEDNN) && !defined(CIRCUITRY_EIGEN_GEMM)
    // oneDNN allocates its packing buffers on every call: worth it only for large blocks (a small
    // model's thousands of small products ran 25% slower through it, mostly in page faults).
    if constexpr (std::is_same_v<T, float>)
      if (m * n * K >= detail::kOnednnMinWork)
        return backends::onednn::sgemm_block(at, bt, m, n, K, alpha, at ? A + i0 : A + i0 * lda, lda, bt ? B + j0 * ldb : B + j0,
                                           ldb, beta, C + i0 * ldc + j0, ldc);
#endif
    auto cb = matrix(C + i0 * ldc + j0, m, n, ldc);
    auto a = matrix(at ? A + i0 : A + i0 * lda, at ? K : m, at ? m : K, lda);
    auto b = matrix(bt ? B + j0 * ldb : B + j0, bt ? n : K, bt ? K : n, ldb);
    const auto product = [&](const auto& lhs, const auto& rhs) {
      if (overwrite) cb.noalias() = alpha * lhs * rhs;
      else cb.noalias() += alpha * lhs * rhs;
    };
    if (!at && !bt) product(a, b);
    else if (at && !bt) product(a.transpose(), b);
    else if (!at && bt) product(a, b.transpose());
    else product(a.transpose(), b.transpose());
  };
  parallel_tasks(blocks, block);  // one block (most calls) runs on the calling thread
}

/// C[M, N] = A[M, K] B[N, K]^T for a very long inner dimension K and small M, N (attribution
/// scores: K = batch * pos * d_model). gemm() parallelises over C's blocks, which leaves
/// threads idle here, so K is split into chunks of a fixed length, one thread each, and the
/// partial products are summed in chunk order: the same result for any thread count.
template <class T>
void gemm_nt_long_inner(std::size_t M, std::size_t N, std::size_t K, const T* A, const T* B, T* C) {
  constexpr std::size_t kChunk = std::size_t{1} << 15;
  const std::size_t chunks = (K + kChunk - 1) / kChunk;
  std::vector<T> partial(chunks * M * N);
  parallel_tasks(chunks, [&](std::size_t c) {
    const std::size_t k0 = c * kChunk, len = std::min(kChunk, K - k0);
    gemm<T>(Trans::No, Trans::Yes, M, N, len, T(1), A + k0, K, B + k0, K, T(0), partial.data() + c * M * N, N);
  });
  std::fill(C, C + M * N, T(0));
  for (std::size_t c = 0; c < chunks; ++c)
    for (std::size_t i = 0; i < M * N; ++i) C[i] += partial[c * M * N + i];
}

}  // namespace circuitry
