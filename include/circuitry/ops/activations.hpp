#pragma once
// The MLP activations as tape ops: `activation<F>(ctx, x)` for any F naming an ActivationKind
// (the MLP components' activation tags, models/components/mlp.hpp), and
// `gated_activation<F>(ctx, x)`, the gated form of GLU MLPs (Shazeer 2020; Llama's SwiGLU):
//   x = [gate | up] [rows, 2F] -> y = f(gate) * up [rows, F].
// The formulas and kernels: backends/cpu/activation_kernels.hpp.
#include "circuitry/ops/common.hpp"

namespace circuitry::ops {

/// y = F(x) elementwise, F a type naming its ActivationKind (`F::kind`).
template <class F, class Ctx, class T = typename Ctx::scalar>
Var<T> activation(const Ctx& ctx, const Var<T>& x) {
  using Kernels = typename Ctx::backend;
  Var<T> y = ctx.output(x.shape, x.needs_grad());
  Kernels::activation_forward(F::kind, x.numel(), x.value, y.value);
  if constexpr (Ctx::records) {
    if (y.needs_grad()) ctx.on_backward([ctx, x, y] { Kernels::activation_backward(F::kind, x.numel(), x.value, ctx.grad(y), ctx.grad(x)); });
  }
  return y;
}

/// x = [gate | up] [rows..., 2F] -> y = F(gate) * up [rows..., F] (a gated linear unit).
template <class F, class Ctx, class T = typename Ctx::scalar>
Var<T> gated_activation(const Ctx& ctx, const Var<T>& x) {
  using Kernels = typename Ctx::backend;
  const std::size_t rows = x.shape.rows(), F2 = x.shape.cols(), Fw = F2 / 2;
  require(F2 % 2 == 0, "gated_activation: the last dimension (" + std::to_string(F2) + ") must be gate | up, even");
  Shape ys = x.shape;
  ys[ys.rank - 1] = Fw;
  Var<T> y = ctx.output(ys, x.needs_grad());
  Kernels::gated_activation_forward(F::kind, rows, Fw, x.value, y.value);
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, x, y, rows, Fw] {
        T* scratch = ctx.arena().template alloc<T>(rows * Fw);  // [rows, F]: dy * up, then f(gate)
        Kernels::gated_activation_backward(F::kind, rows, Fw, x.value, ctx.grad(y), ctx.grad(x), scratch);
      });
  }
  return y;
}

}  // namespace circuitry::ops
