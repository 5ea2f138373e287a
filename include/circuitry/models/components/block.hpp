#pragma once
// How a block wires its sublayers; the block owns the two norms (ln1 before attention, ln2
// before the MLP).
//   PreNorm<Norm>:         x' = x + attn(ln1(x));  x_next = x' + mlp(ln2(x'))   (GPT-2, Llama)
//   ParallelPreNorm<Norm>: x_next = x + attn(ln1(x)) + mlp(ln2(x))              (GPT-NeoX / Pythia,
//                          use_parallel_residual): the MLP reads the layer's input, so the heads of
//                          layer l do not feed m{l} (the graph's parallel_attn_mlp).
// Gemma's blocks add a norm after the heads' sum (ln1_post) and after the MLP (ln2_post), facts of
// the config (post_attention_norm, post_mlp_norm); the layer step applies them (RMS norms only).
#include <string>

#include "circuitry/models/components/parameters.hpp"
#include "circuitry/models/config.hpp"

namespace circuitry {

template <class Norm>
struct PreNorm {
  using norm = Norm;
  static constexpr bool parallel = false;

  /// ln1, the norm of the attention's inputs (prefix: "blocks.{l}.").
  template <class Declare>
  static void attention_norm_parameters(const ModelConfig& c, const std::string& prefix, Declare&& declare) {
    Norm::parameters(prefix + "ln1", c.n_embd, declare);
  }
  /// ln2, the norm of the MLP's input.
  template <class Declare>
  static void mlp_norm_parameters(const ModelConfig& c, const std::string& prefix, Declare&& declare) {
    Norm::parameters(prefix + "ln2", c.n_embd, declare);
  }
  /// ln1_post, the norm after the heads' sum, where the config has one.
  template <class Declare>
  static void attention_post_norm_parameters(const ModelConfig& c, const std::string& prefix, Declare&& declare) {
    if (c.post_attention_norm) Norm::parameters(prefix + "ln1_post", c.n_embd, declare);
  }
  /// ln2_post, the norm after the MLP, where the config has one.
  template <class Declare>
  static void mlp_post_norm_parameters(const ModelConfig& c, const std::string& prefix, Declare&& declare) {
    if (c.post_mlp_norm) Norm::parameters(prefix + "ln2_post", c.n_embd, declare);
  }
};

template <class Norm>
struct ParallelPreNorm : PreNorm<Norm> {
  static constexpr bool parallel = true;
};

}  // namespace circuitry
