#pragma once
// The MLP component: node m{l} (its output, with b_out) and one port m{l} (the input of its
// norm):  out = act(Norm(x) W_in + b_in) W_out + b_out   [B, P, D], hidden width d_mlp.
// The gated form (GLU variants, Shazeer 2020; Llama's SwiGLU with act = silu):
//   out = (act(Norm(x) W_gate) * (Norm(x) W_in)) W_out     W_gate | W_in fused as one [D, 2 d_mlp]
// The activation is the template argument; Mlp<Act> and GatedMlp<Act> are the two forms, and
// NoMlp is an attention-only block (no node, no port). Biases exist when config.mlp_bias says so.
// Gemma's norm after the MLP (config.post_mlp_norm, ln2_post) is part of the node's output:
//   m{l} = RMSNorm_post(out).
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "circuitry/core/arena.hpp"
#include "circuitry/ops.hpp"
#include "circuitry/models/parameters.hpp"
#include "circuitry/models/config.hpp"

namespace circuitry {

/// GPT-2's tanh-approximated GELU (TransformerLens "gelu_new").
struct GeluNew {
  static constexpr std::string_view name = "gelu_new";
  static constexpr ActivationKind kind = ActivationKind::gelu_new;
};
/// The exact, erf-based GELU (TransformerLens "gelu", torch.nn.functional.gelu).
struct Gelu {
  static constexpr std::string_view name = "gelu";
  static constexpr ActivationKind kind = ActivationKind::gelu;
};
struct Relu {
  static constexpr std::string_view name = "relu";
  static constexpr ActivationKind kind = ActivationKind::relu;
};

/// SiLU, x sigmoid(x) (Llama's MLP gate; TransformerLens "silu").
struct Silu {
  static constexpr std::string_view name = "silu";
  static constexpr ActivationKind kind = ActivationKind::silu;
};

template <class Activation, bool Gated>
struct FeedForward {
  using activation = Activation;
  static constexpr bool present = true;
  static constexpr bool gated = Gated;
  static constexpr std::string_view name = Activation::name;

  // circuitry's fused W_gate | W_in (TransformerLens keeps mlp.W_gate and mlp.W_in apart)
  static constexpr const char* w_in = Gated ? "mlp.W_gate_in" : "mlp.W_in";
  static constexpr const char* b_in = Gated ? "mlp.b_gate_in" : "mlp.b_in";

  template <class Declare>
  static void parameters(const ModelConfig& c, const std::string& prefix, Declare&& declare) {
    const std::size_t D = c.n_embd, F = c.n_inner, G = Gated ? 2 * F : F;
    const std::vector<std::size_t> parts = Gated ? std::vector<std::size_t>{F, F} : std::vector<std::size_t>{};
    declare(ParamDecl{prefix + w_in, {D, G}, ParamKind::matrix, parts});
    if (c.mlp_bias) declare(ParamDecl{prefix + b_in, {G}, ParamKind::bias, parts});
    declare(ParamDecl{prefix + "mlp.W_out", {F, D}, ParamKind::matrix, {}});
    if (c.mlp_bias) declare(ParamDecl{prefix + "mlp.b_out", {D}, ParamKind::bias, {}});
  }

  /// Norm(x) W_in + b_in, the MLP's one port. [rows..., d_mlp] (gated: gate | in, [rows..., 2 d_mlp])
  template <class Norm, class Ctx, class LP, class T = typename Ctx::scalar>
  static Var<T> pre(const Ctx& ctx, const Var<T>& x, const LP& w, const ModelConfig& c, ops::PortGradientSink<T> sink = {}) {
    return ops::norm_linear_ports<Norm>(ctx, x, w["ln2.w"], w["ln2.b"], static_cast<T>(c.layer_norm_epsilon), &w[w_in],
                                        optional_param(w[b_in]), ops::PortSplit::single(), std::move(sink));
  }
  /// act(pre), or act(gate) * in. [rows..., d_mlp]
  template <class Ctx, class T = typename Ctx::scalar>
  static Var<T> act(const Ctx& ctx, const Var<T>& pre) {
    if constexpr (Gated) return ops::gated_activation<Activation>(ctx, pre);
    else return ops::activation<Activation>(ctx, pre);
  }
  /// post W_out + b_out, then the norm after the MLP where the config has one. [rows..., D]
  template <class Norm, class Ctx, class LP, class T = typename Ctx::scalar>
  static Var<T> output(const Ctx& ctx, const Var<T>& post, const LP& w, const ModelConfig& c) {
    Var<T> out = ops::linear(ctx, post, w["mlp.W_out"], optional_param(w["mlp.b_out"]));
    if (!c.post_mlp_norm) return out;
    return ops::norm_linear_ports<Norm>(ctx, out, w["ln2_post.w"], w["ln2_post.b"], static_cast<T>(c.layer_norm_epsilon), nullptr,
                                        nullptr, ops::PortSplit::single());
  }

  /// The node's output from its input x [rows, D], no tape (activation and path patching). out [rows, D]
  template <class Norm, class Kernels, class T>
  static void node_output(const LayerParams<T>& w, const ModelConfig& c, const T* x, std::size_t rows,
                          typename Kernels::Arena& arena, T* out) {
    Context<T, false, Kernels> ctx(arena);
    Var<T> in{const_cast<T*>(x), {rows, c.n_embd}, nullptr};
    Var<T> m = output<Norm>(ctx, act(ctx, pre<Norm>(ctx, in, w, c)), w, c);
    Kernels::copy(rows * c.n_embd, m.value, out);
  }
};

template <class Activation>
using Mlp = FeedForward<Activation, false>;
template <class Activation>
using GatedMlp = FeedForward<Activation, true>;

/// No MLP sublayer (attention-only models).
struct NoMlp {
  static constexpr bool present = false;
  static constexpr bool gated = false;
  static constexpr std::string_view name = "none";
  template <class Declare>
  static void parameters(const ModelConfig&, const std::string&, Declare&&) {}
};

}  // namespace circuitry
