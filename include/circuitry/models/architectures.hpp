#pragma once
// The architectures circuitry runs, each one `using` of components (models/components.hpp).
// A checkpoint's config.json names its components; with_architecture picks the type here
// that has them. Adding an architecture is one more line in each of the two lists below,
// plus new component types where the math is new.
#include <string>

#include "circuitry/core/error.hpp"
#include "circuitry/models/components.hpp"

namespace circuitry {

/// GPT-2 (and TransformerLens models of the same shape).
using GPT2 = Architecture<LearnedPositions, PreNorm<LayerNorm>, Attention<Causal>, Mlp<GeluNew>, Unembed<LayerNorm>>;
/// Attention-only transformers (TransformerLens attn-only models; circuitry's shipped induction model).
using AttnOnly = Architecture<LearnedPositions, PreNorm<LayerNorm>, Attention<Causal>, NoMlp, Unembed<LayerNorm>>;
/// GPT-2's block with the exact GELU (TransformerLens act_fn "gelu").
using GeluTransformer = Architecture<LearnedPositions, PreNorm<LayerNorm>, Attention<Causal>, Mlp<Gelu>, Unembed<LayerNorm>>;
/// An encoder-style block: bidirectional attention, ReLU MLP, layer norms.
using BidirectionalRelu =
    Architecture<LearnedPositions, PreNorm<LayerNorm>, Attention<Bidirectional>, Mlp<Relu>, Unembed<LayerNorm>>;
/// tracr's compiled RASP programs (Lindner et al. 2023) as ACDC ports them: no norms,
/// bidirectional attention, ReLU MLPs.
using Tracr = Architecture<LearnedPositions, PreNorm<NoNorm>, Attention<Bidirectional>, Mlp<Relu>, Unembed<NoNorm>>;

/// Pythia and other GPT-NeoX models (use_parallel_residual): rotary positions on a fraction of
/// each head, attention and MLP side by side, exact GELU, untied unembedding.
using Pythia = Architecture<NoPositions, ParallelPreNorm<LayerNorm>, Attention<Causal, Rotary>, Mlp<Gelu>, Unembed<LayerNorm>>;
/// GPT-NeoX with use_parallel_residual false: the same components in GPT-2's sequential order.
using NeoXSequential = Architecture<NoPositions, PreNorm<LayerNorm>, Attention<Causal, Rotary>, Mlp<Gelu>, Unembed<LayerNorm>>;
/// Llama, Qwen2 and Mistral: RMS norms, rotary positions, SwiGLU MLP. Grouped-query attention,
/// q/k/v biases (Qwen2) and a tied unembedding are facts of the config, not types.
using Llama = Architecture<NoPositions, PreNorm<RMSNorm>, Attention<Causal, Rotary>, GatedMlp<Silu>, Unembed<RMSNorm>>;

/// Gemma 2 and 3: Llama's components with gated GELU (tanh). The norms after the attention and
/// the MLP, the scaled embedding, the score scale and soft caps, sliding windows and the local
/// rotary base are facts of the config.
using Gemma = Architecture<NoPositions, PreNorm<RMSNorm>, Attention<Causal, Rotary>, GatedMlp<GeluNew>, Unembed<RMSNorm>>;

template <class... Archs>
struct ArchitectureList {};

using RegisteredArchitectures =
    ArchitectureList<GPT2, AttnOnly, GeluTransformer, BidirectionalRelu, Tracr, Pythia, NeoXSequential, Llama, Gemma>;

namespace detail {
template <class... Archs>
std::string architecture_names(ArchitectureList<Archs...>) {
  std::string names;
  ((names += (names.empty() ? "" : "; ") + Archs::name()), ...);
  return names;
}
}  // namespace detail

namespace detail {
template <class Full, class First, class... Rest, class F>
decltype(auto) dispatch_architecture(ArchitectureList<First, Rest...>, const ModelConfig& c, F&& f) {
  if (First::matches(c)) return std::forward<F>(f).template operator()<First>();
  if constexpr (sizeof...(Rest) > 0) {
    return dispatch_architecture<Full>(ArchitectureList<Rest...>{}, c, std::forward<F>(f));
  } else {
    throw Error("no architecture of circuitry has the components " + First::describe(c) +
                " (circuitry runs: " + architecture_names(Full{}) + ")");
  }
}
}  // namespace detail

/// Calls f.template operator()<Arch>() with the architecture of the list whose components a
/// config names; an unknown combination is an error that lists the known ones.
template <class List = RegisteredArchitectures, class F>
decltype(auto) with_architecture(const ModelConfig& c, F&& f) {
  return detail::dispatch_architecture<List>(List{}, c, std::forward<F>(f));
}

}  // namespace circuitry
