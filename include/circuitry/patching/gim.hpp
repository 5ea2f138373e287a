#pragma once
// GIM, Gradient Interaction Modifications (Edin et al. 2025, "GIM: Improved Interpretability for
// Large Language Models", arXiv 2505.17630, section 3), as an edge attribution method: EAP's
// score (patching/attribution.hpp) with the clean-run gradient taken through a modified backward
// pass, at EAP's cost (one corrupted forward, one clean forward-backward):
//   score(u->p) = sum_{b, pos} (out_u(x') - out_u(x)) . g~_p,   g~_p = d~ M / d in_p
// where d~ is the backward with (ops/gradient_rules.hpp):
//   1. frozen norm statistics: every residual-stream norm's 1/std (1/rms) held constant, which
//      keeps a norm from passing a component's own change back as a rescaling of all others
//      (the paper's "LayerNorm freeze");
//   2. the attention softmax's backward taken at temperature T (default 2): the gradient of
//      softmax(S / T) at the forward's scores, which spreads the gradient over keys that a
//      saturated softmax hides (the paper's "TSG", its answer to softmax redistribution);
//   3. the gradients reaching each head's q, k and v scaled by 1/4, 1/4, 1/2, and in a gated MLP
//      those reaching the gate and up projections by 1/2 each (the paper's gradient normalisation
//      of multiplicative interactions; the defaults of its reference implementation, gim-explain).
// Each modification can be switched off (freeze_norm = false, temperature 1, scales 1); with all
// off GIM is EAP, bit for bit. The forward pass is never changed.
// Decided for edges (the paper scores tokens and nodes): the modified gradient is read at each
// port's input, below the port's own norm, as EAP reads the exact one; the QK norm (Qwen3) is
// inside the head and keeps its exact backward; only the attention softmax is tempered, not the
// metric's.
#include <cmath>
#include <string>
#include <vector>

#include "circuitry/patching/attribution.hpp"

namespace circuitry {

struct Gim {
  static constexpr const char* name = "gim";
  bool freeze_norm = true;
  double softmax_temperature = 2.0;
  double q_scale = 0.25, k_scale = 0.25, v_scale = 0.5;
  double gate_scale = 0.5, up_scale = 0.5;
  std::size_t memory_budget = kAttributionMemoryBudget;
  const Distribution* distribution = nullptr;  // the parts over processes (attribute_gradients)

  std::vector<GradientRun> gradient_runs() const { return {{false, 1.0, 1.0}}; }
  GradientRules gradient_rules() const {
    require(std::isfinite(softmax_temperature) && softmax_temperature > 0,
            "gim: the softmax temperature must be a positive number, got " + std::to_string(softmax_temperature));
    for (const auto& [what, value] : {std::pair{"q", q_scale}, {"k", k_scale}, {"v", v_scale}, {"gate", gate_scale}, {"up", up_scale}})
      require(std::isfinite(value), std::string("gim: the ") + what + " gradient scale must be a finite number");
    GradientRules rules;
    rules.freeze_norm_statistics = freeze_norm;
    rules.softmax_temperature = softmax_temperature;
    rules.q_scale = q_scale, rules.k_scale = k_scale, rules.v_scale = v_scale;
    rules.gate_scale = gate_scale, rules.up_scale = up_scale;
    return rules;
  }
};

}  // namespace circuitry
