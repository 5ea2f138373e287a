#pragma once
// Multi-head attention in two ops, so a hook can read or replace the pattern between them
// (TransformerLens' hook_pattern):
//   pattern[b, h] = softmax(S_bh + mask)                             [B, H, P, P]
//   S_bh = q_bh k_bh^T / sqrt(d_head), or as `scores` says (another scale; a soft cap c tanh(S / c))
//   z[b, :, h]    = pattern[b, h] v_bh                               [B, P, H, d_head]
// q, k and v are read in place from the fused projection qkv [B, P, 3 H d_head] (columns
// q | k | v, head h at columns h*d_head..(h+1)*d_head of each block; H d_head need not be
// d_model). The mask is causal (row i sees keys 0..i, or its last `window` of them) or bidirectional (every row sees the
// keys of its sequence's real positions 0..len_b - 1, so right-padding is never read).
// The kernels, and the softmax backward: backends/cpu/attention_kernels.hpp.
// Under the context's GradientRules::softmax_temperature T (GIM), the pattern's backward is the
// softmax backward at s_T = softmax(S / T) instead of at the pattern: the forward kernel run on a
// copy of qkv whose queries are divided by T gives s_T (under a soft cap, the cap of those scores).
#include "circuitry/ops/common.hpp"

namespace circuitry::ops {

using circuitry::KeyMask;

namespace detail {
template <class T>
AttentionShape attention_shape(const Var<T>& qkv, std::size_t n_heads, AttentionScores scores = {}) {
  require(qkv.shape.rank == 3 && qkv.shape[2] % 3 == 0, "attention: qkv must be [batch, pos, 3 H d_head], got " + qkv.shape.str());
  const std::size_t D = qkv.shape[2] / 3;
  require(n_heads > 0 && D % n_heads == 0, "attention: q width " + std::to_string(D) + " is not divisible by n_heads");
  return {qkv.shape[0], qkv.shape[1], n_heads, D / n_heads, scores};
}
}  // namespace detail

/// qkv [B, P, 3D] -> pattern [B, H, P, P] (row i attends to the keys the mask allows).
template <class Ctx, class T = typename Ctx::scalar>
Var<T> attention_pattern(const Ctx& ctx, const Var<T>& qkv, std::size_t n_heads, const KeyMask& mask, AttentionScores scores = {}) {
  using Kernels = typename Ctx::backend;
  const AttentionShape s = detail::attention_shape(qkv, n_heads, scores);
  require(mask.causal || mask.lengths.empty() || mask.lengths.size() == s.B, "attention: one key length per sequence");
  Var<T> pattern = ctx.output({s.B, s.H, s.P, s.P}, qkv.needs_grad());
  Kernels::attention_pattern_forward(s, mask, qkv.value, pattern.value);
  if constexpr (Ctx::records) {
    if (pattern.needs_grad()) {
      const T temperature = static_cast<T>(ctx.rules().softmax_temperature);
      ctx.on_backward([ctx, qkv, pattern, s, mask, temperature] {
        T* dS = ctx.arena().template alloc<T>(s.B * s.H * s.P * s.P);  // [B, H, P, P]
        const T* softmax_at = pattern.value;                            // [B, H, P, P]
        if (temperature != T(1)) {
          const std::size_t rows = s.B * s.P;
          T* cooled = ctx.arena().template alloc<T>(rows * s.ld());  // [B, P, 3D] with q / T
          Kernels::copy(rows * s.ld(), qkv.value, cooled);
          for (std::size_t r = 0; r < rows; ++r) Kernels::scale(s.D(), T(1) / temperature, cooled + r * s.ld(), cooled + r * s.ld());
          T* at_temperature = ctx.arena().template alloc<T>(s.B * s.H * s.P * s.P);  // s_T [B, H, P, P]
          Kernels::attention_pattern_forward(s, mask, cooled, at_temperature);
          softmax_at = at_temperature;
        }
        Kernels::attention_pattern_backward(s, mask, qkv.value, softmax_at, ctx.grad(pattern), ctx.grad(qkv), dS);
      });
    }
  }
  return pattern;
}

/// pattern [B, H, P, P], qkv [B, P, 3D] -> z [B, P, H, d_head].
template <class Ctx, class T = typename Ctx::scalar>
Var<T> attention_mix(const Ctx& ctx, const Var<T>& pattern, const Var<T>& qkv, std::size_t n_heads) {
  using Kernels = typename Ctx::backend;
  const AttentionShape s = detail::attention_shape(qkv, n_heads);
  require(pattern.shape == Shape({s.B, s.H, s.P, s.P}), "attention_mix: pattern must be " + Shape({s.B, s.H, s.P, s.P}).str());
  Var<T> z = ctx.output({s.B, s.P, s.H, s.dh}, any_grad(pattern, qkv));
  Kernels::attention_mix_forward(s, pattern.value, qkv.value, z.value);
  if constexpr (Ctx::records) {
    if (z.needs_grad())
      ctx.on_backward([ctx, pattern, qkv, z, s] {
        Kernels::attention_mix_backward(s, pattern.value, qkv.value, ctx.grad(z), pattern.needs_grad() ? ctx.grad(pattern) : nullptr,
                                  qkv.needs_grad() ? ctx.grad(qkv) : nullptr);
      });
  }
  return z;
}

}  // namespace circuitry::ops
