#pragma once
// The identity in the forward whose backward scales the gradient, block by block of the last
// axis: GIM's q/k/v and gate/up gradient scales (ops/gradient_rules.hpp; Edin et al. 2025).
//   y = x;  dx += dy * s_j  on the j-th of the last axis' equal column blocks.
#include <vector>

#include "circuitry/ops/common.hpp"

namespace circuitry::ops {

/// x [..., n_blocks * width] -> y = x, whose backward multiplies block j's gradient by
/// block_scales[j]. x itself where nothing is scaled or nothing is recorded.
template <class Ctx, class T = typename Ctx::scalar>
Var<T> scale_gradient_blocks(const Ctx& ctx, const Var<T>& x, const std::vector<double>& block_scales) {
  using Kernels = typename Ctx::backend;
  if constexpr (!Ctx::records) return x;
  else {
    bool scaled = false;
    for (double s : block_scales) scaled = scaled || s != 1.0;
    if (!scaled || !x.needs_grad()) return x;
    const std::size_t cols = x.shape.cols(), n = x.numel(), blocks = block_scales.size();
    require(blocks > 0 && cols % blocks == 0, "scale_gradient_blocks: " + std::to_string(cols) + " columns do not split into " +
                                                  std::to_string(blocks) + " blocks");
    std::vector<T> row(cols);  // [cols] each column's scale
    for (std::size_t c = 0; c < cols; ++c) row[c] = static_cast<T>(block_scales[c / (cols / blocks)]);
    T* scales = ctx.arena().template alloc<T>(cols);
    Kernels::to_device(cols, row.data(), scales);
    Var<T> y = ctx.output(x.shape, true);
    Kernels::copy(n, x.value, y.value);
    ctx.on_backward([ctx, x, y, scales, n, cols] {
      Kernels::mul_broadcast_backward(n, cols, ctx.grad(y), x.value, scales, ctx.grad(x), static_cast<T*>(nullptr));
    });
    return y;
  }
}

}  // namespace circuitry::ops
