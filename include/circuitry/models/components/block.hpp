#pragma once
// How a block wires its sublayers. PreNorm<Norm>: each sublayer reads Norm(residual) and adds
// its output back, attention then MLP (GPT-2's pre-LN block); the block owns the two norms
// (ln1 before attention, ln2 before the MLP). A parallel block (GPT-NeoX: attention and MLP
// read the same residual) is a second wiring with parallel = true.
#include <string>

#include "circuitry/models/components/parameters.hpp"
#include "circuitry/models/config.hpp"

namespace circuitry {

template <class Norm>
struct PreNorm {
  using norm = Norm;
  static constexpr bool parallel = false;

  template <class LW, class Visit>
  static void parameters(const ModelConfig& c, const std::string& prefix, LW& w, bool has_mlp, Visit&& visit) {
    Norm::parameters(prefix + "ln1", c.n_embd, w.ln1_w, w.ln1_b, visit);
    if (has_mlp) Norm::parameters(prefix + "ln2", c.n_embd, w.ln2_w, w.ln2_b, visit);
  }
};

}  // namespace circuitry
