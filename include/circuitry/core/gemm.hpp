#pragma once
// Row-major GEMM through Eigen maps: C = alpha op(A) op(B) + beta C, with leading
// dimensions so strided slices (one head's columns of a [rows, 3 d_model] buffer) need
// no copy. Eigen parallelises large products with OpenMP by itself.
#include <cstddef>

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

}  // namespace circuitry
