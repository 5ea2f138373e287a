#pragma once
// Soft-capping (Gemma 2's final logits; its attention scores are capped inside the attention
// kernels): y = c tanh(x / c), which is x near 0 and never beyond +-c. Three tape ops: a scale,
// tanh (an ActivationKind of the backend's activation kernels) and a scale.
#include "circuitry/ops/activations.hpp"
#include "circuitry/ops/elementwise.hpp"

namespace circuitry::ops {

/// The tanh activation, as ops::activation names its kernels.
struct Tanh {
  static constexpr ActivationKind kind = ActivationKind::tanh;
};

/// c tanh(x / c) elementwise; c > 0.
template <class Ctx, class T = typename Ctx::scalar>
Var<T> soft_cap(const Ctx& ctx, const Var<T>& x, double cap) {
  require(cap > 0, "soft_cap: the cap must be positive");
  return scale(ctx, activation<Tanh>(ctx, scale(ctx, x, static_cast<T>(1 / cap))), static_cast<T>(cap));
}

}  // namespace circuitry::ops
