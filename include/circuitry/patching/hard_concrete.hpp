#pragma once
// The hard-concrete distribution of an edge mask (Louizos, Welling & Kingma 2018, "Learning
// Sparse Neural Networks through L0 Regularization", section 4), as Edge Pruning (Bhaskar et al.
// 2024, arXiv 2406.16778, section 3) uses it: each edge e has a learned log_alpha_e and
//   u ~ U(0, 1),  s = sigmoid((log u - log(1 - u) + log_alpha) / beta)          (eq. 10)
//   s_bar = s (zeta - gamma) + gamma,  z = min(1, max(0, s_bar))                  (eq. 10)
//   E[L0] = sum_e P(z_e != 0) = sum_e sigmoid(log_alpha_e - beta log(-gamma / zeta))  (eq. 12)
// with beta = 2/3, gamma = -0.1, zeta = 1.1. At the end the deterministic mask is
// min(1, max(0, sigmoid(log_alpha) (zeta - gamma) + gamma)) (eq. 13), above 0.5 exactly when
// log_alpha > 0. Both ops are elementwise over the edges (thousands of values) and run on the
// host, like AdamW.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "circuitry/ops/common.hpp"

namespace circuitry {

struct HardConcrete {
  static constexpr double beta = 2.0 / 3.0, gamma = -0.1, zeta = 1.1;

  /// n uniform numbers in (0, 1), drawn in order from `rng`: the top 53 bits of one draw each,
  /// plus half a step (the same on every platform; never 0 or 1).
  static std::vector<double> noise(std::mt19937_64& rng, std::size_t n) {
    std::vector<double> u(n);
    for (double& x : u) x = (static_cast<double>(rng() >> 11) + 0.5) * 0x1p-53;
    return u;
  }
  /// P(z != 0) of one edge.
  static double p_nonzero(double log_alpha) { return 1 / (1 + std::exp(-(log_alpha - beta * std::log(-gamma / zeta)))); }
};

/// z = clamp(s (zeta - gamma) + gamma, 0, 1) at noise u: log_alpha [n], u [n] -> z [n].
/// dz / d log_alpha = (zeta - gamma) s (1 - s) / beta where 0 < s_bar < 1, else 0.
template <class Ctx, class T = typename Ctx::scalar>
Var<T> hard_concrete_sample(const Ctx& ctx, const Var<T>& log_alpha, const std::vector<double>& u) {
  using H = HardConcrete;
  const std::size_t n = log_alpha.numel();
  require(u.size() == n, "hard_concrete_sample: one noise value per mask expected");
  Var<T> z = ctx.output(log_alpha.shape, log_alpha.needs_grad());
  T* slope = ctx.arena().template alloc<T>(n);  // [n] dz / d log_alpha
  for (std::size_t i = 0; i < n; ++i) {
    const double s = 1 / (1 + std::exp(-(std::log(u[i]) - std::log1p(-u[i]) + double(log_alpha.value[i])) / H::beta));
    const double s_bar = s * (H::zeta - H::gamma) + H::gamma;
    z.value[i] = static_cast<T>(std::clamp(s_bar, 0.0, 1.0));
    slope[i] = s_bar > 0 && s_bar < 1 ? static_cast<T>((H::zeta - H::gamma) * s * (1 - s) / H::beta) : T(0);
  }
  if constexpr (Ctx::records) {
    if (z.needs_grad())
      ctx.on_backward([ctx, log_alpha, z, slope, n] {
        const T* dz = ctx.grad(z);
        T* dla = ctx.grad(log_alpha);
        for (std::size_t i = 0; i < n; ++i) dla[i] += dz[i] * slope[i];
      });
  }
  return z;
}

/// E[L0] = sum_e sigmoid(log_alpha_e - beta log(-gamma / zeta)): log_alpha [n] -> a scalar.
template <class Ctx, class T = typename Ctx::scalar>
Var<T> expected_l0(const Ctx& ctx, const Var<T>& log_alpha) {
  const std::size_t n = log_alpha.numel();
  Var<T> out = ctx.output(Shape{}, log_alpha.needs_grad());
  T* p = ctx.arena().template alloc<T>(n);  // [n] P(z_e != 0)
  double sum = 0;
  for (std::size_t i = 0; i < n; ++i) sum += double(p[i] = static_cast<T>(HardConcrete::p_nonzero(double(log_alpha.value[i]))));
  out.value[0] = static_cast<T>(sum);
  if constexpr (Ctx::records) {
    if (out.needs_grad())
      ctx.on_backward([ctx, log_alpha, out, p, n] {
        const T g = ctx.grad(out)[0];
        T* dla = ctx.grad(log_alpha);
        for (std::size_t i = 0; i < n; ++i) dla[i] += g * p[i] * (1 - p[i]);
      });
  }
  return out;
}

}  // namespace circuitry
