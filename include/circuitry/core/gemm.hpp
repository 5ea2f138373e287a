#pragma once
// Row-major GEMM through Eigen maps: C = alpha op(A) op(B) + beta C, with leading
// dimensions so strided slices (one head's columns of a [rows, 3 d_model] buffer) need
// no copy. Eigen parallelises large products with OpenMP by itself.
#include <algorithm>
#include <cstddef>
#include <vector>

#include <Eigen/Core>

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

enum class Trans { No, Yes };

/// C[M, N] = alpha * op(A) * op(B) + beta * C, where op(A) is [M, K] and op(B) is [K, N].
/// A is stored [M, K] (or [K, M] when transposed) with leading dimension lda; same for B.
template <class T>
void gemm(Trans ta, Trans tb, std::size_t M, std::size_t N, std::size_t K, T alpha, const T* A,
          std::size_t lda, const T* B, std::size_t ldb, T beta, T* C, std::size_t ldc) {
  auto c = matrix(C, M, N, ldc);
  if (beta == T(0)) c.setZero();
  else if (beta != T(1)) c *= beta;
  if (M == 0 || N == 0 || K == 0) return;
  const bool at = ta == Trans::Yes, bt = tb == Trans::Yes;
  auto a = matrix(A, at ? K : M, at ? M : K, lda);
  auto b = matrix(B, bt ? N : K, bt ? K : N, ldb);
  if (!at && !bt) c.noalias() += alpha * a * b;
  else if (at && !bt) c.noalias() += alpha * a.transpose() * b;
  else if (!at && bt) c.noalias() += alpha * a * b.transpose();
  else c.noalias() += alpha * a.transpose() * b.transpose();
}

/// C[M, N] = A[M, K] B[N, K]^T for a very long inner dimension K and small M, N (attribution
/// scores: K = batch * pos * d_model). Eigen parallelises over C's blocks, which leaves
/// threads idle here, so K is split across threads and the partial products summed.
template <class T>
void gemm_nt_long_inner(std::size_t M, std::size_t N, std::size_t K, const T* A, const T* B, T* C) {
  constexpr std::size_t kChunk = std::size_t{1} << 15;
  const std::size_t chunks = (K + kChunk - 1) / kChunk;
  std::vector<T> partial(chunks * M * N);
#pragma omp parallel for schedule(dynamic) if (chunks > 1)
  for (std::size_t c = 0; c < chunks; ++c) {
    const std::size_t k0 = c * kChunk, len = std::min(kChunk, K - k0);
    gemm<T>(Trans::No, Trans::Yes, M, N, len, T(1), A + k0, K, B + k0, K, T(0), partial.data() + c * M * N, N);
  }
  std::fill(C, C + M * N, T(0));
  for (std::size_t c = 0; c < chunks; ++c)
    for (std::size_t i = 0; i < M * N; ++i) C[i] += partial[c * M * N + i];
}

}  // namespace circuitry
