#pragma once
// Transformer components as types, composed into architectures at compile time
// (DESIGN.md section 1):
//   using GPT2 = Architecture<LearnedPositions, PreNorm<LayerNorm>, Attention<Causal>, Mlp<GeluNew>, Unembed<LayerNorm>>;
// Sizes are run-time values from config.json; the types fix the structure and the math.
// Each component (models/components/) owns its parameters (names, shapes, kinds), its
// forward written once against the op library and a Context, and what it contributes to
// the graph: the input node (embeddings), a head node with <q>, <k>, <v> ports per head
// (attention), an MLP node and port (mlp), the `logits` port (unembed). models/model.hpp
// composes them without knowing any architecture.
#include <concepts>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "circuitry/graph/graph.hpp"
#include "circuitry/models/components/attention.hpp"
#include "circuitry/models/components/block.hpp"
#include "circuitry/models/components/embeddings.hpp"
#include "circuitry/models/components/mlp.hpp"
#include "circuitry/models/components/norms.hpp"
#include "circuitry/models/components/unembed.hpp"
#include "circuitry/models/config.hpp"

namespace circuitry {

template <class Embed, class Block, class Attn, class MlpT, class Out>
struct Architecture {
  using embed = Embed;
  using block = Block;
  using norm = typename Block::norm;
  using attention = Attn;
  using mlp = MlpT;
  using unembed = Out;

  static constexpr bool has_mlp = MlpT::present;
  static constexpr bool parallel_attn_mlp = Block::parallel;
  static_assert(!Attn::rotary || std::is_same_v<Embed, NoPositions>,
                "a rotary architecture takes its positions in attention: its input component must be NoPositions");
  static_assert(!parallel_attn_mlp || has_mlp, "a parallel block needs an MLP");

  /// How positions enter, in config spelling: "standard", "rotary" or "none".
  static constexpr std::string_view positional() {
    if constexpr (Attn::rotary) return Attn::positions::name;
    else return Embed::name;
  }
  /// The component choices in config spelling: "LN, causal, gelu_new, standard positions".
  static std::string name() {
    const std::string mlp = has_mlp ? std::string(MlpT::gated ? "gated " : "") + std::string(MlpT::name) : "attn-only";
    return std::string(norm::name) + ", " + std::string(Attn::name) + ", " + mlp + ", " + std::string(positional()) +
           " positions" + (parallel_attn_mlp ? ", parallel attention/MLP" : "");
  }
  /// The node and port structure of the residual-stream graph.
  static GraphShape graph_shape(const ModelConfig& c) { return {c.n_layer, c.n_head, has_mlp, parallel_attn_mlp}; }
  /// Whether a config's component choices are this architecture's.
  static bool matches(const ModelConfig& c) {
    return c.normalization == norm::name && c.attention_dir == Attn::name && c.positional == positional() &&
           c.attn_only == !has_mlp && (!has_mlp || (c.act_fn == MlpT::name && c.gated_mlp == MlpT::gated)) &&
           c.parallel_attn_mlp == parallel_attn_mlp && std::is_same_v<typename Out::norm, norm>;
  }
  /// Checks that a config describes a model of this architecture.
  static void check_config(const ModelConfig& c) {
    require(matches(c), "the model config says " + describe(c) + ", but the architecture is " + name());
    require(!(c.post_attention_norm || c.post_mlp_norm) || norm::kind == NormKind::rms_norm,
            "model config: norms after the attention or the MLP are implemented as RMS norms only");
    require(!c.post_attention_norm || !c.attn_out_bias,
            "model config: a norm after the heads' sum with an attention output bias b_O is not implemented");
    require(!(c.post_mlp_norm && !has_mlp), "model config: a norm after the MLP needs an MLP");
    require(!c.sliding_window || Attn::mask_type::causal, "model config: a sliding window needs causal attention");
    require(!c.rotary_base_local || Attn::rotary, "model config: a local rotary base needs rotary attention");
    require(c.attn_scale >= 0 && c.attn_softcap >= 0 && c.final_softcap >= 0 && c.embedding_multiplier >= 0,
            "model config: attention scale, soft caps and embedding multiplier must be >= 0 (0: none)");
  }
  /// A config's component choices, in the words of name().
  static std::string describe(const ModelConfig& c) {
    const std::string mlp = c.attn_only ? "attn-only" : std::string(c.gated_mlp ? "gated " : "") + c.act_fn;
    return c.normalization + ", " + c.attention_dir + ", " + mlp + ", " + c.positional + " positions" +
           (c.parallel_attn_mlp ? ", parallel attention/MLP" : "");
  }
  /// Calls declare(ParamDecl) for every parameter, in forward order.
  template <class Declare>
  static void parameters(const ModelConfig& c, Declare&& declare) {
    Embed::parameters(c, declare);
    for (std::size_t l = 0; l < c.n_layer; ++l) {
      const std::string prefix = "blocks." + std::to_string(l) + ".";
      Block::attention_norm_parameters(c, prefix, declare);
      Attn::parameters(c, prefix, declare);
      Block::attention_post_norm_parameters(c, prefix, declare);
      if constexpr (has_mlp) {
        Block::mlp_norm_parameters(c, prefix, declare);
        MlpT::parameters(c, prefix, declare);
        Block::mlp_post_norm_parameters(c, prefix, declare);
      }
    }
    Out::parameters(c, declare);
  }
  /// Every parameter's declaration, in forward order.
  static std::vector<ParamDecl> parameter_list(const ModelConfig& c) {
    std::vector<ParamDecl> list;
    parameters(c, [&](ParamDecl d) { list.push_back(std::move(d)); });
    return list;
  }
};

/// What scoring, pruning and patching need from an architecture.
template <class A>
concept ArchitectureSpec = requires(const ModelConfig& c) {
  { A::has_mlp } -> std::convertible_to<bool>;
  { A::parallel_attn_mlp } -> std::convertible_to<bool>;
  { A::graph_shape(c) } -> std::same_as<GraphShape>;
  { A::name() } -> std::convertible_to<std::string>;
  { A::matches(c) } -> std::same_as<bool>;
};

}  // namespace circuitry
