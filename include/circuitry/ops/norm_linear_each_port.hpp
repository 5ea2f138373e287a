#pragma once
// The q/k/v projection of a layer whose every port reads its own input (the masked forward of
// learned edge masks, patching/masked_forward.hpp). Port p = 3h + j (j = q, k, v) of head h
// reads its own residual copy x_p and writes
//   y[:, cols_p] = Norm(x_p) W[:, wcol_p] + b[wcol_p]
// in the column layout of norm_linear_ports (ops/norm_linear.hpp: cols_p = j H d_head + h d_head,
// wcol_p its weight columns, its group's for k and v), so the QK norm, rotary and attention read
// it as they read the ordinary projection. With every x_p equal it is that op's forward.
// Backward, per port: d Norm(x_p) = dy[:, cols_p] W[:, wcol_p]^T, then the norm's backward;
// W, b and the norm's gains get their gradients summed over the ports.
#include "circuitry/ops/norm_linear.hpp"

namespace circuitry::ops {

/// x [3H, rows, D] -> y [rows, 3 H d_head], shaped `out_shape` (e.g. [B, P, 3 H d_head]).
template <class Norm, class Ctx, class T = typename Ctx::scalar>
  requires NormPolicy<Norm>
Var<T> norm_linear_each_port(const Ctx& ctx, const Var<T>& x, const Var<T>& ln_w, const Var<T>& ln_b, std::type_identity_t<T> eps,
                             const std::type_identity_t<Var<T>>& w, const std::type_identity_t<Var<T>>* bias, PortSplit split,
                             Shape out_shape) {
  using Kernels = typename Ctx::backend;
  const std::size_t P = split.n_ports(), D = x.shape.cols(), dh = split.d_head, Dm = split.n_heads * dh, NO = 3 * Dm;
  const std::size_t rows = x.numel() / (P * D), N = w.shape[1];
  require(split.n_heads > 0 && x.numel() == P * rows * D && out_shape.numel() == rows * NO,
          "norm_linear_each_port: x " + x.shape.str() + " is not one input per q/k/v port for output " + out_shape.str());
  require(w.shape.rank == 2 && w.shape[0] == D && N == (split.n_heads + 2 * split.groups()) * dh,
          "norm_linear_each_port: the weight " + w.shape.str() + " does not match the q/k/v split");
  const bool diff = any_grad(x, ln_w, ln_b, w) || (bias && bias->needs_grad());
  T* normed = ctx.arena().template alloc<T>(P * rows * D);  // [3H, rows, D]
  T* mean = ctx.arena().template alloc<T>(P * rows);         // [3H, rows]
  T* rstd = ctx.arena().template alloc<T>(P * rows);         // [3H, rows]
  Kernels::norm_forward(Norm::kind, x.value, ln_w.value, ln_b.value, normed, mean, rstd, P * rows, D, T(eps));
  Var<T> y = ctx.output(out_shape, diff);
  auto out_col = [=](std::size_t p) { return (p % 3) * Dm + (p / 3) * dh; };
  auto w_col = [=](std::size_t p) { return split.weight_column(p % 3, p / 3); };
  const T* b = bias ? bias->value : nullptr;
  parallel_items(P, rows * D * dh, [&](std::size_t p) {  // disjoint columns of y
    if (b) Kernels::copy_blocks(rows, dh, b + w_col(p), 0, y.value + out_col(p), NO);
    Kernels::gemm(Trans::No, Trans::No, rows, dh, D, T(1), normed + p * rows * D, D, w.value + w_col(p), N, b ? T(1) : T(0),
                  y.value + out_col(p), NO);
  });
  if constexpr (Ctx::records) {
    if (!diff) return y;
    const Var<T> Bv = bias ? *bias : Var<T>{};
    ctx.on_backward([ctx, x, ln_w, ln_b, w, Bv, y, normed, mean, rstd, P, rows, D, N, NO, dh, out_col, w_col] {
      const T* dy = ctx.grad(y);  // [rows, 3 H d_head]
      if (w.needs_grad())
        for (std::size_t p = 0; p < P; ++p)  // ports in order: k and v of a group share columns
          Kernels::gemm(Trans::Yes, Trans::No, D, dh, rows, T(1), normed + p * rows * D, D, dy + out_col(p), NO, T(1), ctx.grad(w) + w_col(p), N);
      if (Bv.needs_grad())
        for (std::size_t p = 0; p < P; ++p)
          for (std::size_t r = 0; r < rows; ++r) Kernels::axpy(dh, T(1), dy + r * NO + out_col(p), ctx.grad(Bv) + w_col(p));
      const bool norm_params = ln_w.needs_grad() || ln_b.needs_grad();
      if (!x.needs_grad() && !norm_params) return;
      T* dnormed = ctx.arena().template alloc<T>(P * rows * D);  // [3H, rows, D]
      parallel_items(P, rows * D * dh, [&](std::size_t p) {
        Kernels::gemm(Trans::No, Trans::Yes, rows, D, dh, T(1), dy + out_col(p), NO, w.value + w_col(p), N, T(0), dnormed + p * rows * D, D);
      });
      if (norm_params) Kernels::norm_backward_params(Norm::kind, dnormed, x.value, mean, rstd, ctx.grad(ln_w), ctx.grad(ln_b), P * rows, D);
      if (x.needs_grad()) Kernels::norm_backward_input(Norm::kind, dnormed, x.value, ln_w.value, mean, rstd, ctx.grad(x), P * rows, D);
    });
  }
  return y;
}

}  // namespace circuitry::ops
