#pragma once
// Pre-norm projection that keeps the downstream ports apart in the backward pass.
//
// In the residual-stream graph (DESIGN.md section 2) every head reads its own copy of the
// residual for each of q, k and v, through its own application of the layer norm; the
// ordinary forward computes LN(x) once because the copies are equal. Attribution patching
// needs d M / d in_p for each port p separately (EAP, Syed et al. 2023, eq. 3): that is
// the layer-norm backward applied to the part of d LN(x) that flows through p's columns:
//   g_p = LN'(x)^T ( dY[:, cols_p] W[:, cols_p]^T )            [rows, d_model]
// This op computes y = LN(x) W + b in one go and, in the backward, hands every g_p to a
// PortGradientSink before summing them into dx (sum_p g_p is the ordinary gradient).
// With W absent it is a plain norm with a single port (the final norm: `logits`).
// The norm is a policy (models/components/norms.hpp: LayerNorm, RMSNorm, NoNorm) naming the
// kind of norm the backend's kernels apply.
// Under the context's GradientRules::freeze_norm_statistics (GIM) the norm's backward holds its
// scale constant (backends/cpu/norm_kernels.hpp).
#include <algorithm>
#include <concepts>
#include <functional>

#include "circuitry/ops/common.hpp"

namespace circuitry::ops {

/// A norm policy: a type naming its NormKind (models/components/norms.hpp).
template <class N>
concept NormPolicy = requires {
  { N::kind } -> std::convertible_to<NormKind>;
};

/// How the output columns split into ports: either one port for all columns, or q/k/v
/// per head (port 3h + j reads output columns j*H*d_head + h*d_head .. + d_head, j = q, k, v).
/// Grouped-query attention (kv_heads < n_heads): the weight holds H query heads but only KV
/// heads of keys and values, [D, (H + 2 KV) d_head]; query head h reads KV head h / (H / KV).
/// The output still has 3 H d_head columns, k and v repeated for each query head of a group,
/// because every query head's <k> and <v> port reads its own copy of the residual (EAP-IG's
/// ungrouped graph; DESIGN.md section 2): the backward keeps each query head's share apart.
struct PortSplit {
  std::size_t n_heads = 0;   // 0: a single port
  std::size_t d_head = 0;
  std::size_t kv_heads = 0;  // 0: n_heads (no grouping)

  std::size_t n_ports() const { return n_heads ? 3 * n_heads : 1; }
  std::size_t groups() const { return kv_heads ? kv_heads : n_heads; }
  bool grouped() const { return n_heads && groups() != n_heads; }
  /// The weight's first column for port (j = q, k, v; head h).
  std::size_t weight_column(std::size_t j, std::size_t h) const {
    const std::size_t KV = groups();
    return j == 0 ? h * d_head : (n_heads + (j - 1) * KV + h / (n_heads / KV)) * d_head;
  }
  static PortSplit single() { return {}; }
  static PortSplit qkv_heads(std::size_t n_heads, std::size_t d_head, std::size_t kv_heads = 0) {
    return {n_heads, d_head, kv_heads};
  }
};

/// Receives the gradients of the metric w.r.t. each port's input, [n_ports, rows, d_model].
template <class T>
using PortGradientSink = std::function<void(const T* port_grads, std::size_t n_ports, std::size_t rows, std::size_t d_model)>;

/// y = Norm(x) W + b  (or Norm(x) when w is null): x [..., D] -> [..., N] (3 H d_head when grouped).
template <class Norm, class Ctx, class T = typename Ctx::scalar>
  requires NormPolicy<Norm>
Var<T> norm_linear_ports(const Ctx& ctx, const Var<T>& x, const Var<T>& ln_w, const Var<T>& ln_b, std::type_identity_t<T> eps,
                         const std::type_identity_t<Var<T>>* w, const std::type_identity_t<Var<T>>* bias, PortSplit split, std::type_identity_t<PortGradientSink<T>> sink = {}) {
  using Kernels = typename Ctx::backend;
  const std::size_t D = x.shape.cols(), rows = x.shape.rows();
  const std::size_t N = w ? w->shape[1] : D;                           // the weight's columns
  const std::size_t NO = split.n_heads ? 3 * split.n_heads * split.d_head : N;  // the output's
  require(!w || (w->shape.rank == 2 && w->shape[0] == D), "norm_linear_ports: weight must be [" + std::to_string(D) + ", N]");
  require(split.n_heads == 0 || (split.n_heads % split.groups() == 0 &&
                                 N == (split.n_heads + 2 * split.groups()) * split.d_head),
          "norm_linear_ports: q/k/v split does not match the weight");
  const bool diff = any_grad(x, ln_w, ln_b) || (w && w->needs_grad()) || (bias && bias->needs_grad());
  Var<T> normed = ctx.output(x.shape, diff);
  T* mean = ctx.arena().template alloc<T>(rows);  // [rows]
  T* rstd = ctx.arena().template alloc<T>(rows);  // [rows]
  Kernels::norm_forward(Norm::kind, x.value, ln_w.value, ln_b.value, normed.value, mean, rstd, rows, D, T(eps));
  Var<T> y = normed;
  if (w) {
    Shape ys = x.shape;
    ys[ys.rank - 1] = NO;
    y = ctx.output(ys, diff);
    // Grouped: the projection [rows, N] first, then each KV head's k and v copied to its query heads.
    T* proj = split.grouped() ? ctx.arena().template alloc<T>(rows * N) : y.value;
    if (bias) Kernels::copy_blocks(rows, N, bias->value, 0, proj, N);  // every row starts as the bias
    Kernels::gemm(Trans::No, Trans::No, rows, N, D, T(1), normed.value, D, w->value, N, bias ? T(1) : T(0), proj, N);
    if (split.grouped())
      for (std::size_t p = 0; p < split.n_ports(); ++p)
        Kernels::copy_blocks(rows, split.d_head, proj + split.weight_column(p % 3, p / 3), N,
                             y.value + (p % 3) * split.n_heads * split.d_head + (p / 3) * split.d_head, NO);
  }
  if constexpr (Ctx::records) {
    if (!diff) return y;
    Var<T> W = w ? *w : Var<T>{}, Bv = bias ? *bias : Var<T>{};
    const bool frozen = ctx.rules().freeze_norm_statistics;
    ctx.on_backward([ctx, x, ln_w, ln_b, W, Bv, normed, y, mean, rstd, rows, D, N, NO, split, sink, frozen] {
      auto& arena = ctx.arena();
      const T* dy_out = ctx.grad(y);  // [rows, NO]
      // d projection [rows, N]: grouped, each KV head's gradient is the sum over its query heads.
      const T* dy = dy_out;
      if (W.value && split.grouped()) {
        T* sum = arena.template alloc<T>(rows * N);
        Kernels::fill_zero(rows * N, sum);
        for (std::size_t r = 0; r < rows; ++r)  // rows outside, ports inside: the order of the original sums
          for (std::size_t p = 0; p < split.n_ports(); ++p)
            Kernels::axpy(split.d_head, T(1), dy_out + r * NO + (p % 3) * split.n_heads * split.d_head + (p / 3) * split.d_head,
                          sum + r * N + split.weight_column(p % 3, p / 3));
        dy = sum;
      }
      const std::size_t P = split.n_ports();
      const bool norm_params_grad = ln_w.needs_grad() || ln_b.needs_grad();
      // d LN(x): [rows, D], summed over ports, for the LN parameters and the plain path. With
      // per-port gradients and frozen norm parameters (attribution patching) nothing reads it:
      // the ports' own GEMMs below give the same product split by head, so it is not computed.
      const bool need_dnormed = norm_params_grad || !sink || P == 1;
      T* dnormed = W.value ? (need_dnormed ? arena.template alloc<T>(rows * D) : nullptr) : const_cast<T*>(dy);
      if (W.value) {
        if (W.needs_grad()) Kernels::gemm(Trans::Yes, Trans::No, D, N, rows, T(1), normed.value, D, dy, N, T(1), ctx.grad(W), N);
        if (Bv.needs_grad()) Kernels::sum_repeats(rows * N, N, dy, ctx.grad(Bv));
        if (need_dnormed) Kernels::gemm(Trans::No, Trans::Yes, rows, D, N, T(1), dy, N, W.value, N, T(0), dnormed, D);
      }
      if (norm_params_grad) Kernels::norm_backward_params(Norm::kind, dnormed, x.value, mean, rstd, ctx.grad(ln_w), ctx.grad(ln_b), rows, D);
      if (!x.needs_grad() && !sink) return;
      // g [rows, D] := d Norm(x) / dx applied to g, exact or with the scale frozen.
      auto norm_backward = [&](T* g) {
        if (frozen) Kernels::norm_backward_frozen_in_place(Norm::kind, g, ln_w.value, rstd, rows, D);
        else Kernels::norm_backward_in_place(Norm::kind, g, x.value, ln_w.value, mean, rstd, rows, D);
      };
      if (!sink) {
        if (!frozen) {
          Kernels::norm_backward_input(Norm::kind, dnormed, x.value, ln_w.value, mean, rstd, ctx.grad(x), rows, D);
          return;
        }
        T* g = arena.template alloc<T>(rows * D);  // [rows, D]
        Kernels::copy(rows * D, dnormed, g);
        norm_backward(g);
        Kernels::axpy(rows * D, T(1), g, ctx.grad(x));
        return;
      }
      // Per-port gradients g_p [P, rows, D], in the tape's scratch buffer (reused by every layer).
      T* g = ctx.scratch(P * rows * D);
      if (P == 1) {
        if (frozen) {
          Kernels::copy(rows * D, dnormed, g);
          norm_backward(g);
        } else {
          std::fill(g, g + rows * D, T(0));
          Kernels::norm_backward_input(Norm::kind, dnormed, x.value, ln_w.value, mean, rstd, g, rows, D);
        }
      } else {
        // Ports run in parallel; each GEMM is small (inner dimension d_head), so one thread each.
        const std::size_t dh = split.d_head, Dm = split.n_heads * dh;
        parallel_items(P, rows * D * dh, [&](std::size_t p) {
          const std::size_t out_col = (p % 3) * Dm + (p / 3) * dh, w_col = split.weight_column(p % 3, p / 3);
          T* gp = g + p * rows * D;
          Kernels::gemm(Trans::No, Trans::Yes, rows, D, dh, T(1), dy_out + out_col, NO, W.value + w_col, N, T(0), gp, D);
          norm_backward(gp);
        });
      }
      sink(g, P, rows, D);
      if (x.needs_grad()) Kernels::add_parts(P, rows * D, g, ctx.grad(x));  // dx += sum_p g_p
    });
  }
  return y;
}

}  // namespace circuitry::ops
