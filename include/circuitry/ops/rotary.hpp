#pragma once
// Rotary position embedding (RoPE; Su et al. 2021, eq. 34), in the "rotate-half" layout that
// Hugging Face's GPT-NeoX, Llama, Qwen2 and Mistral use: of a head vector's first `rot`
// dimensions, dimension i and i + rot/2 form a pair (not 2i and 2i + 1 as in the paper), turned
// by the angle p * theta_i at position p, theta_i = base^(-2i / rot) (or scaled: ops/rope_scaling.hpp):
//   out[i]         = x[i] cos - x[i + rot/2] sin
//   out[i + rot/2] = x[i + rot/2] cos + x[i] sin
// Dimensions rot..d_head-1 pass through (GPT-NeoX's rotary_pct < 1). Queries and keys are
// rotated, values are not, so q . k depends on the positions only through their difference.
// The backward turns the gradient back by the same angle: dx = R(-p theta) dy. The kernel:
// backends/cpu/rotary_kernels.hpp.
#include <cmath>
#include <vector>

#include "circuitry/ops/common.hpp"
#include "circuitry/ops/rope_scaling.hpp"

namespace circuitry::ops {

/// cos and sin of p * theta_i for positions 0..P-1 and pairs i = 0..rot/2-1. [P, rot/2] each.
/// The angles are computed in double whatever T is, so float64 runs are exact to float64.
template <class T>
struct RotaryTable {
  std::size_t rot = 0, half = 0;
  std::vector<T> cos, sin;

  RotaryTable(std::size_t positions, std::size_t rot_dims, double base, const RopeScaling& scaling = {})
      : rot(rot_dims), half(rot_dims / 2) {
    const std::vector<double> theta = rotary_frequencies(rot_dims, base, scaling);
    cos.resize(positions * half), sin.resize(positions * half);
    for (std::size_t p = 0; p < positions; ++p)
      for (std::size_t i = 0; i < half; ++i) {
        const double angle = double(p) * theta[i];
        cos[p * half + i] = static_cast<T>(std::cos(angle));
        sin[p * half + i] = static_cast<T>(std::sin(angle));
      }
  }
};

/// qkv [B, P, 3 H d_head] (q | k | v blocks, head h at columns h d_head of each) -> the same with
/// every head's q and k rotated. The q and k blocks are adjacent, so they are 2H head vectors.
template <class Ctx, class T = typename Ctx::scalar>
Var<T> rotary_qk(const Ctx& ctx, const Var<T>& qkv, std::size_t n_heads, const RotaryTable<T>& table) {
  using Kernels = typename Ctx::backend;
  require(qkv.shape.rank == 3 && qkv.shape[2] % (3 * n_heads) == 0, "rotary_qk: qkv must be [batch, pos, 3 H d_head], got " + qkv.shape.str());
  const std::size_t P = qkv.shape[1], rows = qkv.shape[0] * P, ld = qkv.shape[2], dh = ld / (3 * n_heads);
  require(table.rot <= dh, "rotary_qk: " + std::to_string(table.rot) + " rotated dimensions exceed d_head = " + std::to_string(dh));
  require(table.cos.size() >= P * table.half, "rotary_qk: the table has fewer positions than the sequence");
  Var<T> y = ctx.output(qkv.shape, qkv.needs_grad());
  Kernels::copy(qkv.numel(), qkv.value, y.value);
  Kernels::rotate_half(rows, P, ld, 2 * n_heads, dh, table.rot, table.cos.data(), table.sin.data(), false, y.value);
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, qkv, y, rows, P, ld, n_heads, dh, &table] {
        T* g = ctx.arena().template alloc<T>(rows * ld);  // [rows, 3 H d_head]
        Kernels::copy(rows * ld, ctx.grad(y), g);
        Kernels::rotate_half(rows, P, ld, 2 * n_heads, dh, table.rot, table.cos.data(), table.sin.data(), /*inverse=*/true, g);
        Kernels::axpy(rows * ld, T(1), g, ctx.grad(qkv));
      });
  }
  return y;
}

}  // namespace circuitry::ops
