#pragma once
// Transformer components as types, composed into architectures at compile time
// (DESIGN.md section 1):
//   using GPT2 = Architecture<LearnedPositions, PreNorm<LayerNorm>, Attention<Causal>, Mlp<GeluNew>, Unembed>;
// Sizes are run-time values from config.json; the types fix the structure: which nodes
// exist (an attention-only model has no MLP nodes), how blocks are wired (pre-norm,
// sequential attention then MLP), and so the edge graph, which scoring and pruning use
// through the ArchitectureSpec concept without knowing the architecture.
#include <concepts>
#include <string>
#include <type_traits>

#include "circuitry/graph/graph.hpp"
#include "circuitry/models/config.hpp"

namespace circuitry {

// ---- component tags ---------------------------------------------------------------
/// input node = token embedding + learned position embedding (GPT-2).
struct LearnedPositions {};
/// Layer norm with weight and bias, biased variance (torch.nn.LayerNorm).
struct LayerNorm {};
/// Each sublayer reads Norm(residual) and adds its output back (GPT-2's pre-LN block).
template <class Norm>
struct PreNorm {
  using norm = Norm;
};
/// Causal (autoregressive) mask.
struct Causal {};
/// Multi-head attention with a mask; q, k, v from one fused projection.
template <class Mask>
struct Attention {
  using mask = Mask;
};
/// GPT-2's tanh-approximated GELU.
struct GeluNew {};
/// Two-layer MLP with an activation.
template <class Activation>
struct Mlp {
  using activation = Activation;
  static constexpr bool present = true;
};
/// No MLP sublayer (attention-only models).
struct NoMlp {
  static constexpr bool present = false;
};
/// Final norm then logits = x W_U^T (W_U tied to the token embedding unless config says otherwise).
struct Unembed {};

// ---- architecture -----------------------------------------------------------------
template <class Embed, class Block, class Attn, class MlpT, class Out>
struct Architecture {
  using embed = Embed;
  using block = Block;
  using attention = Attn;
  using mlp = MlpT;
  using unembed = Out;

  static constexpr bool has_mlp = MlpT::present;
  static constexpr bool parallel_attn_mlp = false;  // PreNorm blocks are sequential

  static std::string name() { return has_mlp ? "gpt2" : "attn-only"; }
  /// The node and port structure of the residual-stream graph.
  static GraphShape graph_shape(const ModelConfig& c) { return {c.n_layer, c.n_head, has_mlp, parallel_attn_mlp}; }
  /// Checks that a config describes a model of this architecture.
  static void check_config(const ModelConfig& c) {
    require(c.attn_only == !has_mlp, std::string("config.json says attn_only=") + (c.attn_only ? "true" : "false") +
                                         " but the architecture is " + name());
  }
};

using GPT2 = Architecture<LearnedPositions, PreNorm<LayerNorm>, Attention<Causal>, Mlp<GeluNew>, Unembed>;
using AttnOnly = Architecture<LearnedPositions, PreNorm<LayerNorm>, Attention<Causal>, NoMlp, Unembed>;

/// What scoring, pruning and patching need from an architecture.
template <class A>
concept ArchitectureSpec = requires(const ModelConfig& c) {
  { A::has_mlp } -> std::convertible_to<bool>;
  { A::parallel_attn_mlp } -> std::convertible_to<bool>;
  { A::graph_shape(c) } -> std::same_as<GraphShape>;
  { A::name() } -> std::convertible_to<std::string>;
};

static_assert(ArchitectureSpec<GPT2> && ArchitectureSpec<AttnOnly>);

/// Calls f.template operator()<Arch>() with the architecture a config.json describes.
template <class F>
decltype(auto) with_architecture(const ModelConfig& c, F&& f) {
  if (c.attn_only) return std::forward<F>(f).template operator()<AttnOnly>();
  return std::forward<F>(f).template operator()<GPT2>();
}

}  // namespace circuitry
