#pragma once
// AtP*'s QK fix (Kramar et al. 2024, "AtP*: An efficient and scalable method for localizing LLM
// behaviour to components", arXiv 2403.00745, section 3.1.1, eqs. 7-10), for the edges into the
// q and k ports. Attribution patching linearises the attention softmax, which is flat where
// attention saturates: an edge that moves a head's queries or keys far enough to change where it
// looks gets a near-zero score. The fix recomputes the pattern exactly and linearises only from
// the pattern on:
//   score(u->a{l}.h{h}<k>) = sum_{b, t, s} (A'[b, h, t, s] - A[b, h, t, s]) G[b, h, t, s]
// where A is head h's clean pattern, G = d M / d A from the clean run's backward, and A' the
// pattern with head h's keys computed from its <k> input patched alone: in_k + Delta_u, Delta_u =
// out_u(x') - out_u(x) (through the port's own norm, the projection and its bias, the QK norm and
// rotary, exactly); the same for <q> with the queries. The patched inputs of every node u into
// layer l are run together: one norm and projection of (resid_pre_l + Delta_u) gives every head's
// q and k, and as heads do not mix in the pattern, one pattern of the clean q|k|v with the patched
// q (or k) block gives A' of every head at once.
// Decided for edges: the paper's query/key nodes are the vectors themselves; here the change of an
// edge reaches them through the port's norm and projection, computed exactly, not linearised.
#include <algorithm>
#include <vector>

#include "circuitry/graph/graph.hpp"
#include "circuitry/models/model.hpp"

namespace circuitry {

/// Working memory of one batch of upstream nodes in the QK fix.
inline constexpr std::size_t kQkFixChunkBytes = std::size_t{64} << 20;

/// For every node u feeding layer l and every head h, calls visit(u, h, kind, b, r, value) with
/// value = sum_{t, s} (A'_b - A_b) G_r,b of head h (kind PortKind::Q or K): example b's QK-fix term
/// for the pattern gradient of run r.
///   resid_pre  [B * P, D]          the clean residual entering layer l
///   delta      [n_upstream, B*P*D] Delta_u = out_u(x') - out_u(x)
///   grads      R runs' G for layer l, run r at grads + r * run_stride, each [B, H, P, P]
template <class M, class Visit, class T = typename M::scalar>
void qk_fix_layer(const M& model, const Batch& clean, std::size_t l, const T* resid_pre, const T* delta, const T* grads,
                  std::size_t R, std::size_t run_stride, Visit&& visit) {
  using Attn = typename M::attention;
  using Norm = typename M::norm;
  using Kernels = typename M::backend;
  const ModelConfig& c = model.config();
  const std::size_t B = clean.batch, P = clean.pos, D = c.n_embd, H = c.n_head, A = c.d_attn(), ld = 3 * A;
  const std::size_t rows = B * P, BPD = rows * D, PP = P * P, BHPP = B * H * PP;
  const std::size_t U = first_node_of_layer(l, H, M::architecture::has_mlp);  // the nodes before layer l
  const LayerParams<T> w = model.params().layer(l);

  ArenaFor<M> clean_arena;  // the clean q|k|v and pattern, kept for every batch of nodes
  ContextFor<M> clean_ctx(clean_arena);
  const Var<T> clean_qkv = Attn::rotate(clean_ctx, Attn::template qkv<Norm>(clean_ctx, Var<T>{const_cast<T*>(resid_pre), {B, P, D}, nullptr}, w, c),
                                        c, model.rotary(l));                                       // [B, P, 3A]
  const Var<T> clean_pattern = Attn::pattern(clean_ctx, clean_qkv, c, model.key_mask(clean, 1, l));  // [B, H, P, P]

  const std::size_t per_node = (BPD + 3 * rows * ld + BHPP + B * H * R) * sizeof(T);
  const std::size_t chunk = std::clamp<std::size_t>(kQkFixChunkBytes / per_node, 1, U);
  ArenaFor<M> arena;
  ContextFor<M> ctx(arena);
  std::vector<T> dots;  // [B, H, n, R] on the host
  for (std::size_t u0 = 0; u0 < U; u0 += chunk) {
    const std::size_t n = std::min(chunk, U - u0);
    arena.reset();
    T* patched_in = arena.template alloc<T>(n * BPD);  // [n, B, P, D] resid_pre + Delta_u
    for (std::size_t i = 0; i < n; ++i) {
      Kernels::copy(BPD, resid_pre, patched_in + i * BPD);
      Kernels::axpy(BPD, T(1), delta + (u0 + i) * BPD, patched_in + i * BPD);
    }
    const Var<T> patched = Attn::rotate(ctx, Attn::template qkv<Norm>(ctx, Var<T>{patched_in, {n * B, P, D}, nullptr}, w, c), c,
                                        model.rotary(l));  // [n*B, P, 3A]
    T* mixed = arena.template alloc<T>(n * rows * ld);   // [n*B, P, 3A] clean q|k|v with one block patched
    T* changed = arena.template alloc<T>(n * BHPP);      // [n, B, H, P, P] A' - A
    T* device_dots = arena.template alloc<T>(B * H * n * R);
    const ops::KeyMask mask = model.key_mask(clean, n, l);
    for (const PortKind kind : {PortKind::Q, PortKind::K}) {
      const std::size_t block = kind == PortKind::Q ? 0 : A;
      for (std::size_t i = 0; i < n; ++i) Kernels::copy(rows * ld, clean_qkv.value, mixed + i * rows * ld);
      Kernels::copy_blocks(n * rows, A, patched.value + block, ld, mixed + block, ld);
      Kernels::attention_pattern_forward(AttentionShape{n * B, P, H, c.d_head(), Attn::scores(c)}, mask, mixed, changed);
      for (std::size_t i = 0; i < n; ++i) Kernels::subtract(BHPP, changed + i * BHPP, clean_pattern.value, changed + i * BHPP);
      // dots[b, h, i, r] = (A'_i - A)[b, h] . G_r[b, h]: one [n, P^2] x [P^2, R] product per (b, h).
      for (std::size_t bh = 0; bh < B * H; ++bh)
        Kernels::gemm(Trans::No, Trans::Yes, n, R, PP, T(1), changed + bh * PP, BHPP, grads + bh * PP, run_stride, T(0),
                      device_dots + bh * n * R, R);
      dots.resize(B * H * n * R);
      Kernels::to_host(dots.size(), device_dots, dots.data());
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t h = 0; h < H; ++h)
          for (std::size_t b = 0; b < B; ++b)
            for (std::size_t r = 0; r < R; ++r) visit(u0 + i, h, kind, b, r, double(dots[((b * H + h) * n + i) * R + r]));
    }
  }
}

}  // namespace circuitry
