#pragma once
// Matrix products. `matmul` multiplies every row of x by one matrix (weights are shared
// across batch and position); `batched_matmul` pairs the b-th matrices of two stacks.
// Backward (C = A B): dA += dC B^T, dB += A^T dC.
#include <optional>
#include <vector>

#include "circuitry/core/gemm.hpp"
#include "circuitry/core/ops/common.hpp"

namespace circuitry::ops {

/// y = x w (+ bias): x [..., K], w [K, N], bias [N] or none -> y [..., N].
template <class Ctx, class T = typename Ctx::scalar>
Var<T> linear(const Ctx& ctx, const Var<T>& x, const Var<T>& w, const std::type_identity_t<Var<T>>* bias = nullptr) {
  const std::size_t K = x.shape.cols(), M = x.shape.rows(), N = w.shape[1];
  require(w.shape.rank == 2 && w.shape[0] == K,
          "linear: x has " + std::to_string(K) + " columns but w is " + w.shape.str());
  require(!bias || (bias->shape.rank == 1 && bias->shape[0] == N), "linear: bias must be [" + std::to_string(N) + "]");
  Shape ys = x.shape;
  ys[ys.rank - 1] = N;
  const bool diff = any_grad(x, w) || (bias && bias->needs_grad());
  Var<T> y = ctx.output(ys, diff);
  if (bias)
    for (std::size_t r = 0; r < M; ++r) vec(y.value + r * N, N) = vec(bias->value, N);
  gemm<T>(Trans::No, Trans::No, M, N, K, T(1), x.value, K, w.value, N, bias ? T(1) : T(0), y.value, N);
  if constexpr (Ctx::records) {
    if (diff) {
      Var<T> b = bias ? *bias : Var<T>{};
      ctx.on_backward([ctx, x, w, b, y, M, N, K] {
        const T* dy = ctx.grad(y);
        if (x.needs_grad()) gemm<T>(Trans::No, Trans::Yes, M, K, N, T(1), dy, N, w.value, N, T(1), ctx.grad(x), K);
        if (w.needs_grad()) gemm<T>(Trans::Yes, Trans::No, K, N, M, T(1), x.value, K, dy, N, T(1), ctx.grad(w), N);
        if (b.needs_grad()) {
          T* db = ctx.grad(b);
          for (std::size_t r = 0; r < M; ++r) vec(db, N) += vec(dy + r * N, N);
        }
      });
    }
  }
  return y;
}

/// y = x w: x [..., K], w [K, N] -> [..., N].
template <class Ctx, class T = typename Ctx::scalar>
Var<T> matmul(const Ctx& ctx, const Var<T>& x, const Var<T>& w) {
  return linear(ctx, x, w, nullptr);
}

/// c[b] = a[b] x[b]: a [B, M, K], x [B, K, N] -> [B, M, N].
template <class Ctx, class T = typename Ctx::scalar>
Var<T> batched_matmul(const Ctx& ctx, const Var<T>& a, const Var<T>& x) {
  require(a.shape.rank == 3 && x.shape.rank == 3 && a.shape[0] == x.shape[0] && a.shape[2] == x.shape[1],
          "batched_matmul: shapes " + a.shape.str() + " and " + x.shape.str() + " do not multiply");
  const std::size_t B = a.shape[0], M = a.shape[1], K = a.shape[2], N = x.shape[2];
  Var<T> c = ctx.output({B, M, N}, any_grad(a, x));
  for (std::size_t b = 0; b < B; ++b)
    gemm<T>(Trans::No, Trans::No, M, N, K, T(1), a.value + b * M * K, K, x.value + b * K * N, N, T(0),
            c.value + b * M * N, N);
  if constexpr (Ctx::records) {
    if (c.needs_grad()) {
      ctx.on_backward([ctx, a, x, c, B, M, N, K] {
        const T* dc = ctx.grad(c);
        for (std::size_t b = 0; b < B; ++b) {
          if (a.needs_grad())
            gemm<T>(Trans::No, Trans::Yes, M, K, N, T(1), dc + b * M * N, N, x.value + b * K * N, N, T(1),
                    ctx.grad(a) + b * M * K, K);
          if (x.needs_grad())
            gemm<T>(Trans::Yes, Trans::No, K, N, M, T(1), a.value + b * M * K, K, dc + b * M * N, N, T(1),
                    ctx.grad(x) + b * K * N, N);
        }
      });
    }
  }
  return c;
}

}  // namespace circuitry::ops

namespace circuitry::ops {

/// dy [M, N] is "sparse" when at most N / kSparseColumnFraction of its columns hold a nonzero.
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

/// out[M, K] += a[M, N] w[N, K], where a is zero outside `columns`: out[m] += a[m, j] w[j] for
/// those j in increasing order (the same order for any thread count).
template <class T>
void add_sparse_rows_product(const T* a, std::size_t M, std::size_t N, const std::vector<std::size_t>& columns, const T* w,
                             std::size_t K, T* out) {
  for (std::size_t m = 0; m < M; ++m)
    for (std::size_t j : columns)
      if (const T coefficient = a[m * N + j]; !(coefficient == T(0))) vec(out + m * K, K) += coefficient * vec(w + j * K, K);
}

/// y = x w^T: x [..., K], w [N, K] -> [..., N] (the unembedding, with W_U stored [vocab, d_model]).
template <class Ctx, class T = typename Ctx::scalar>
Var<T> matmul_transposed(const Ctx& ctx, const Var<T>& x, const Var<T>& w) {
  const std::size_t K = x.shape.cols(), M = x.shape.rows();
  require(w.shape.rank == 2 && w.shape[1] == K, "matmul_transposed: x has " + std::to_string(K) + " columns but w is " + w.shape.str());
  const std::size_t N = w.shape[0];
  Shape ys = x.shape;
  ys[ys.rank - 1] = N;
  Var<T> y = ctx.output(ys, any_grad(x, w));
  gemm<T>(Trans::No, Trans::Yes, M, N, K, T(1), x.value, K, w.value, K, T(0), y.value, N);
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, x, w, y, M, N, K] {
        const T* dy = ctx.grad(y);
        if (x.needs_grad()) {
          // A logit-difference metric's gradient touches two logits an example: when dy has few
          // nonzero columns, dx += dy w reads only their rows of w, not all of it (GPT-2's
          // unembedding is 154 MB, read at memory speed by the dense product).
          if (const auto columns = sparse_columns(dy, M, N, N / kSparseColumnFraction))
            add_sparse_rows_product(dy, M, N, *columns, w.value, K, ctx.grad(x));
          else
            gemm<T>(Trans::No, Trans::No, M, K, N, T(1), dy, N, w.value, K, T(1), ctx.grad(x), K);
        }
        if (w.needs_grad()) gemm<T>(Trans::Yes, Trans::No, N, K, M, T(1), dy, N, x.value, K, T(1), ctx.grad(w), K);
      });
  }
  return y;
}

}  // namespace circuitry::ops
