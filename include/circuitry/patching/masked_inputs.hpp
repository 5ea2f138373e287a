#pragma once
// The input of every port of one stage under a soft edge mask (Edge Pruning, Bhaskar et al.
// 2024, eq. 2; DESIGN.md section 2, "Learned edge masks"): port p of the stage reads
//   in_p = c + sum_{u < U} z_{p,u} (O_u - S_u),   c = b + sum_{u < U} S_u
// which is sum_u [z_{p,u} O_u + (1 - z_{p,u}) S_u] plus the attention output biases b of the layers
// before the stage (never patched). O: the run's node outputs so far, S: the ablation's source,
// U: the upstream nodes that feed the stage (the same prefix of Graph::upstream() for each of its
// ports), z_{p,u}: the mask of edge u->p. Graph::edges() runs by port, then upstream, so the
// stage's masks are one [n, U] block of the mask vector. One GEMM each way:
//   forward   in = c + Z (O - S)             Z [n, U], O - S [U, rows * D]
//   backward  dZ += d_in (O - S)^T,  dO += Z^T d_in
// O - S is formed again in the backward rather than kept (the stages' copies would hold
// (2L + 1) N / 2 node outputs), in the tape's reusable scratch buffer, as in the forward.
#include <vector>

#include "circuitry/ops/common.hpp"

namespace circuitry {

/// mask [n_edges] (this stage's block from `offset`), nodes: the node outputs so far, blocks
/// [n_i, rows * D] in upstream order covering at least U nodes; source [U, rows * D]; constant
/// [rows * D]. -> [n * rows, D]
template <class Ctx, class T = typename Ctx::scalar>
Var<T> masked_inputs(const Ctx& ctx, const Var<T>& mask, std::size_t offset, std::size_t n, std::size_t U,
                     const std::vector<Var<T>>& nodes, const T* source, const T* constant, std::size_t rows, std::size_t D) {
  using Kernels = typename Ctx::backend;
  const std::size_t R = rows * D;
  require(offset + n * U <= mask.numel(), "masked_inputs: the stage's masks run past the mask vector");
  auto differences = [nodes, source, U, R](T* diff) {  // O - S [U, R]
    std::size_t u = 0;
    for (const Var<T>& block : nodes)
      for (std::size_t i = 0; i < block.numel() / R && u < U; ++i, ++u) Kernels::subtract(R, block.value + i * R, source + u * R, diff + u * R);
    require(u == U, "masked_inputs: fewer node outputs than the stage's upstream nodes");
  };
  std::vector<T> local;  // without a tape: the forward's own buffer
  auto buffer = [&] {    // [U, R]
    if constexpr (Ctx::records) {
      return ctx.scratch(U * R);
    } else {
      local.resize(U * R);
      return local.data();
    }
  };
  bool diff_nodes = false;
  for (const Var<T>& block : nodes) diff_nodes = diff_nodes || block.needs_grad();
  Var<T> in = ctx.output({n * rows, D}, mask.needs_grad() || diff_nodes);
  T* diff = buffer();
  differences(diff);
  Kernels::copy_blocks(n, R, constant, 0, in.value, R);
  Kernels::gemm(Trans::No, Trans::No, n, R, U, T(1), mask.value + offset, U, diff, R, T(1), in.value, R);
  if constexpr (Ctx::records) {
    if (in.needs_grad())
      ctx.on_backward([ctx, mask, offset, n, U, nodes, in, R, differences] {
        const T* d_in = ctx.grad(in);  // [n, R]
        T* diff = ctx.scratch(U * R);  // [U, R]
        differences(diff);
        if (mask.needs_grad()) Kernels::gemm(Trans::No, Trans::Yes, n, U, R, T(1), d_in, R, diff, R, T(1), ctx.grad(mask) + offset, U);
        T* d_out = diff;  // [U, R] dO, over the differences (no longer needed)
        Kernels::gemm(Trans::Yes, Trans::No, U, R, n, T(1), mask.value + offset, U, d_in, R, T(0), d_out, R);
        std::size_t u = 0;
        for (const Var<T>& block : nodes) {
          const std::size_t k = std::min(block.numel() / R, U - std::min(u, U));
          if (block.needs_grad() && k) Kernels::axpy(k * R, T(1), d_out + u * R, ctx.grad(block));
          u += k;
        }
      });
  }
  return in;
}

}  // namespace circuitry
