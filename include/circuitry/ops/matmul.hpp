#pragma once
// Matrix products. `matmul` multiplies every row of x by one matrix (weights are shared
// across batch and position); `batched_matmul` pairs the b-th matrices of two stacks.
// Backward (C = A B): dA += dC B^T, dB += A^T dC.
#include "circuitry/ops/common.hpp"

namespace circuitry::ops {

/// y = x w (+ bias): x [..., K], w [K, N], bias [N] or none -> y [..., N].
template <class Ctx, class T = typename Ctx::scalar>
Var<T> linear(const Ctx& ctx, const Var<T>& x, const Var<T>& w, const std::type_identity_t<Var<T>>* bias = nullptr) {
  using Kernels = typename Ctx::backend;
  const std::size_t K = x.shape.cols(), M = x.shape.rows(), N = w.shape[1];
  require(w.shape.rank == 2 && w.shape[0] == K,
          "linear: x has " + std::to_string(K) + " columns but w is " + w.shape.str());
  require(!bias || (bias->shape.rank == 1 && bias->shape[0] == N), "linear: bias must be [" + std::to_string(N) + "]");
  Shape ys = x.shape;
  ys[ys.rank - 1] = N;
  const bool diff = any_grad(x, w) || (bias && bias->needs_grad());
  Var<T> y = ctx.output(ys, diff);
  if (bias) Kernels::copy_blocks(M, N, bias->value, 0, y.value, N);  // every row starts as the bias
  Kernels::gemm(Trans::No, Trans::No, M, N, K, T(1), x.value, K, w.value, N, bias ? T(1) : T(0), y.value, N);
  if constexpr (Ctx::records) {
    if (diff) {
      Var<T> b = bias ? *bias : Var<T>{};
      ctx.on_backward([ctx, x, w, b, y, M, N, K] {
        const T* dy = ctx.grad(y);
        if (x.needs_grad()) Kernels::gemm(Trans::No, Trans::Yes, M, K, N, T(1), dy, N, w.value, N, T(1), ctx.grad(x), K);
        if (w.needs_grad()) Kernels::gemm(Trans::Yes, Trans::No, K, N, M, T(1), x.value, K, dy, N, T(1), ctx.grad(w), N);
        if (b.needs_grad()) Kernels::sum_repeats(M * N, N, dy, ctx.grad(b));
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
  using Kernels = typename Ctx::backend;
  require(a.shape.rank == 3 && x.shape.rank == 3 && a.shape[0] == x.shape[0] && a.shape[2] == x.shape[1],
          "batched_matmul: shapes " + a.shape.str() + " and " + x.shape.str() + " do not multiply");
  const std::size_t B = a.shape[0], M = a.shape[1], K = a.shape[2], N = x.shape[2];
  Var<T> c = ctx.output({B, M, N}, any_grad(a, x));
  for (std::size_t b = 0; b < B; ++b)
    Kernels::gemm(Trans::No, Trans::No, M, N, K, T(1), a.value + b * M * K, K, x.value + b * K * N, N, T(0),
            c.value + b * M * N, N);
  if constexpr (Ctx::records) {
    if (c.needs_grad()) {
      ctx.on_backward([ctx, a, x, c, B, M, N, K] {
        const T* dc = ctx.grad(c);
        for (std::size_t b = 0; b < B; ++b) {
          if (a.needs_grad())
            Kernels::gemm(Trans::No, Trans::Yes, M, K, N, T(1), dc + b * M * N, N, x.value + b * K * N, N, T(1),
                    ctx.grad(a) + b * M * K, K);
          if (x.needs_grad())
            Kernels::gemm(Trans::Yes, Trans::No, K, N, M, T(1), a.value + b * M * K, K, dc + b * M * N, N, T(1),
                    ctx.grad(x) + b * K * N, N);
        }
      });
    }
  }
  return c;
}

}  // namespace circuitry::ops

namespace circuitry::ops {

/// y = x w^T: x [..., K], w [N, K] -> [..., N] (the unembedding, with W_U stored [vocab, d_model]).
template <class Ctx, class T = typename Ctx::scalar>
Var<T> matmul_transposed(const Ctx& ctx, const Var<T>& x, const Var<T>& w) {
  using Kernels = typename Ctx::backend;
  const std::size_t K = x.shape.cols(), M = x.shape.rows();
  require(w.shape.rank == 2 && w.shape[1] == K, "matmul_transposed: x has " + std::to_string(K) + " columns but w is " + w.shape.str());
  const std::size_t N = w.shape[0];
  Shape ys = x.shape;
  ys[ys.rank - 1] = N;
  Var<T> y = ctx.output(ys, any_grad(x, w));
  Kernels::gemm(Trans::No, Trans::Yes, M, N, K, T(1), x.value, K, w.value, K, T(0), y.value, N);
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, x, w, y, M, N, K] {
        const T* dy = ctx.grad(y);
        if (x.needs_grad()) {
          // dx += dy w, through only the rows of w that dy's nonzero columns pick when there are
          // few (a logit-difference metric's gradient touches two logits an example).
          Kernels::add_product_sparse_lhs(M, N, K, dy, w.value, ctx.grad(x));
        }
        if (w.needs_grad()) Kernels::gemm(Trans::Yes, Trans::No, N, K, M, T(1), dy, N, x.value, K, T(1), ctx.grad(w), K);
      });
  }
  return y;
}

}  // namespace circuitry::ops
