#pragma once
// out += a w when a has few nonzero columns: a logit-difference metric's gradient touches two
// logits an example, so the unembedding's backward dx += dy W_U reads only their rows of W_U
// instead of all of it (GPT-2's is 154 MB, read at memory speed by the dense product).
#include <cstddef>
#include <optional>
#include <vector>

#include "circuitry/backends/cpu/gemm.hpp"
#include "circuitry/backends/cpu/vector_kernels.hpp"

namespace circuitry::cpu {

/// a [M, N] is "sparse" when at most N / kSparseColumnFraction of its columns hold a nonzero.
inline constexpr std::size_t kSparseColumnFraction = 16;

/// The columns of a [M, N] holding a nonzero (NaN counts), in increasing order; none (nullopt)
/// when there are more than `limit`, found without scanning the rest.
template <class T>
std::optional<std::vector<std::size_t>> sparse_columns(const T* a, std::size_t M, std::size_t N, std::size_t limit) {
  std::vector<char> seen(N, 0);
  std::size_t count = 0;
  for (std::size_t m = 0; m < M; ++m)
    for (std::size_t n = 0; n < N; ++n)
      if (!(a[m * N + n] == T(0)) && !seen[n]) {
        if (++count > limit) return std::nullopt;
        seen[n] = 1;
      }
  std::vector<std::size_t> columns;
  for (std::size_t n = 0; n < N; ++n)
    if (seen[n]) columns.push_back(n);
  return columns;
}

/// out [M, K] += a [M, N] w [N, K]: through the nonzero columns of a in increasing order (the
/// same order for any thread count) when there are few, else one GEMM.
template <class T>
void add_product_sparse_lhs(std::size_t M, std::size_t N, std::size_t K, const T* a, const T* w, T* out) {
  const auto columns = sparse_columns(a, M, N, N / kSparseColumnFraction);
  if (!columns) return gemm<T>(Trans::No, Trans::No, M, K, N, T(1), a, N, w, K, T(1), out, K);
  for (std::size_t m = 0; m < M; ++m)
    for (std::size_t j : *columns)
      if (const T coefficient = a[m * N + j]; !(coefficient == T(0))) vec(out + m * K, K) += coefficient * vec(w + j * K, K);
}

}  // namespace circuitry::cpu
