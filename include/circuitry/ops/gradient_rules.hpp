#pragma once
// Rules that change the backward pass and never the forward: what a gradient method may ask of
// the ops beside the exact reverse mode. An op reads them from its context (ops/context.hpp)
// when it records its backward; the default is the exact gradient.
//   GIM (Edin et al. 2025, "GIM: Improved Interpretability for Large Language Models", section 3;
//   its reference implementation gim-explain):
//     freeze_norm_statistics   every residual-stream norm's scale 1/sqrt(var + eps) (RMS:
//                              1/sqrt(mean(x^2) + eps)) is a constant of the backward; a layer
//                              norm's mean is still differentiated
//     softmax_temperature T    the attention softmax's backward is that of softmax(S / T) at the
//                              forward's scores S: dS = s_T (dA - sum(dA s_T)), s_T = softmax(S / T)
//     q/k/v scales             the gradients reaching each head's q, k and v are multiplied by them
//     gate/up scales           in a gated MLP, the gradients reaching the gate's and the up
//                              projection's outputs are multiplied by them
//   GradDrop (Kramar et al. 2024, "AtP*", section 3.1.2, eq. 11): detached_layer l, the layer whose
//   attention and MLP outputs pass no gradient back (the forward adds them as constants).
#include <cstddef>
#include <limits>

namespace circuitry {

struct GradientRules {
  static constexpr std::size_t no_layer = std::numeric_limits<std::size_t>::max();

  bool freeze_norm_statistics = false;
  double softmax_temperature = 1.0;
  double q_scale = 1.0, k_scale = 1.0, v_scale = 1.0;
  double gate_scale = 1.0, up_scale = 1.0;
  std::size_t detached_layer = no_layer;

  bool scales_qkv() const { return q_scale != 1.0 || k_scale != 1.0 || v_scale != 1.0; }
  bool scales_gated_mlp() const { return gate_scale != 1.0 || up_scale != 1.0; }
  bool detaches(std::size_t layer) const { return detached_layer == layer; }
};

}  // namespace circuitry
