#pragma once
// The unembedding: the `logits` port is the input of the final norm.
//   logits = FinalNorm(x) W_U (+ b_U)        [rows, d_vocab_out]
// FinalNorm is a norm component (NoNorm: no final norm). Whether W_U is tied to the token
// embedding, and whether there is a bias, are facts of the checkpoint (config), not types.
// W_U is stored transposed, [d_vocab_out, d_model], so a tied W_U is W_E itself. With
// config.final_softcap c (Gemma 2) the logits are c tanh(logits / c) (ops/soft_cap.hpp).
#include <string>
#include <string_view>

#include "circuitry/ops.hpp"
#include "circuitry/models/components/parameters.hpp"
#include "circuitry/models/config.hpp"

namespace circuitry {

template <class FinalNorm>
struct Unembed {
  using norm = FinalNorm;

  template <class Declare>
  static void parameters(const ModelConfig& c, Declare&& declare) {
    FinalNorm::parameters("ln_final", c.n_embd, declare);
    if (!c.tie_word_embeddings) declare(ParamDecl{"unembed.W_U", {c.n_outputs(), c.n_embd}, ParamKind::matrix, {}});
    if (c.unembed_bias) declare(ParamDecl{"unembed.b_U", {c.n_outputs()}, ParamKind::bias, {}});
  }

  /// FinalNorm(x) with x the `logits` port's input [rows..., D] (sink: d metric / d x).
  template <class Ctx, class V, class T = typename Ctx::scalar>
  static Var<T> normalize(const Ctx& ctx, const Var<T>& x, const V& pv, const ModelConfig& c, ops::PortGradientSink<T> sink = {}) {
    return ops::norm_linear_ports<FinalNorm>(ctx, x, pv["ln_final.w"], pv["ln_final.b"], static_cast<T>(c.layer_norm_epsilon), nullptr, nullptr,
                                             ops::PortSplit::single(), std::move(sink));
  }
  /// normed [R, D] -> logits [R, d_vocab_out]
  template <class Ctx, class V, class T = typename Ctx::scalar>
  static Var<T> project(const Ctx& ctx, const Var<T>& normed, const V& pv, const ModelConfig& c) {
    const Var<T>& untied = pv["unembed.W_U"];
    Var<T> logits = ops::matmul_transposed(ctx, normed, untied.value ? untied : pv["embed.W_E"]);  // tied: W_E
    if (const Var<T>& bias = pv["unembed.b_U"]; bias.value) logits = ops::add(ctx, logits, bias);
    return c.final_softcap != 0 ? ops::soft_cap(ctx, logits, c.final_softcap) : logits;
  }
};

}  // namespace circuitry
