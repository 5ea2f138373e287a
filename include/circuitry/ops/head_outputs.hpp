#pragma once
// Every attention head's output kept apart, on the tape: out_h = z_h W_O[h] (no b_O), the node
// outputs a{l}.h{h} of the residual-stream graph (DESIGN.md section 2), for a forward whose
// ports read the heads one by one (patching/masked_forward.hpp). Summed over h (plus b_O) they
// are ops::linear(z, W_O, b_O). Backward: dz_h += d out_h W_O[h]^T, dW_O[h] += z_h^T d out_h.
#include "circuitry/ops/common.hpp"

namespace circuitry::ops {

/// z [..., H d_head] (rows = the leading dimensions), w_o [H d_head, D] -> [H, rows, D].
template <class Ctx, class T = typename Ctx::scalar>
Var<T> head_outputs(const Ctx& ctx, const Var<T>& z, const Var<T>& w_o, std::size_t n_heads) {
  using Kernels = typename Ctx::backend;
  const std::size_t A = z.shape.cols(), rows = z.shape.rows(), H = n_heads;
  require(H > 0 && A % H == 0 && w_o.shape.rank == 2 && w_o.shape[0] == A,
          "head_outputs: z " + z.shape.str() + " and W_O " + w_o.shape.str() + " do not fit " + std::to_string(H) + " heads");
  const std::size_t dh = A / H, D = w_o.shape[1];
  Var<T> out = ctx.output({H, rows, D}, any_grad(z, w_o));
  parallel_items(H, rows * D * dh, [&](std::size_t h) {
    Kernels::gemm(Trans::No, Trans::No, rows, D, dh, T(1), z.value + h * dh, A, w_o.value + h * dh * D, D, T(0), out.value + h * rows * D, D);
  });
  if constexpr (Ctx::records) {
    if (out.needs_grad())
      ctx.on_backward([ctx, z, w_o, out, rows, D, dh, A, H] {
        const T* d_out = ctx.grad(out);  // [H, rows, D]
        T* dz = ctx.grad(z);             // nullptr for a constant; allocated here, before the threads
        T* dw = ctx.grad(w_o);
        parallel_items(H, rows * D * dh, [&](std::size_t h) {  // head h owns its columns of dz and its rows of dW_O
          if (dz) Kernels::gemm(Trans::No, Trans::Yes, rows, dh, D, T(1), d_out + h * rows * D, D, w_o.value + h * dh * D, D, T(1), dz + h * dh, A);
          if (dw) Kernels::gemm(Trans::Yes, Trans::No, dh, D, rows, T(1), z.value + h * dh, A, d_out + h * rows * D, D, T(1), dw + h * dh * D, D);
        });
      });
  }
  return out;
}

}  // namespace circuitry::ops
