#pragma once
// Input components: the `input` node of the graph (DESIGN.md section 2), the token
// embedding plus whatever positional information enters the residual stream there.
//   LearnedPositions: input = W_E[token] + W_pos[position]  (GPT-2; TL "standard")
//   NoPositions:      input = W_E[token]                    (positions enter elsewhere, or not at all)
// With config.embedding_multiplier m (Gemma: sqrt(d_model)), the token embedding is m W_E[token].
#include <string>
#include <string_view>
#include <vector>

#include "circuitry/ops.hpp"
#include "circuitry/models/batch.hpp"
#include "circuitry/models/components/parameters.hpp"
#include "circuitry/models/config.hpp"

namespace circuitry {

namespace detail {
/// Token embedding W_E[tokens] [B, P, D] (times the config's multiplier), hooked as hook_embed.
template <class Ctx, class V, class Hook, class T = typename Ctx::scalar>
Var<T> token_embedding(const Ctx& ctx, const V& pv, const ModelConfig& c, const Batch& batch, Hook&& hook) {
  Var<T> tok = ops::embedding(ctx, pv["embed.W_E"], batch.tokens, {batch.batch, batch.pos});  // [B, P, D]
  if constexpr (Ctx::records)  // gradients reach the embedding even when the table is a constant
    if (!tok.needs_grad()) ctx.tape().watch(tok);
  if (c.embedding_multiplier != 0) tok = ops::scale(ctx, tok, static_cast<T>(c.embedding_multiplier));
  hook("hook_embed", tok);
  return tok;
}
}  // namespace detail

struct LearnedPositions {
  static constexpr std::string_view name = "standard";
  template <class Declare>
  static void parameters(const ModelConfig& c, Declare&& declare) {
    declare(ParamDecl{"embed.W_E", {c.vocab_size, c.n_embd}, ParamKind::embedding, {}});
    declare(ParamDecl{"pos_embed.W_pos", {c.n_positions, c.n_embd}, ParamKind::embedding, {}});
  }
  /// The input node's output [B, P, D].
  template <class Ctx, class V, class Hook, class T = typename Ctx::scalar>
  static Var<T> input(const Ctx& ctx, const V& pv, const ModelConfig& c, const Batch& batch, Hook&& hook) {
    Var<T> tok = detail::token_embedding(ctx, pv, c, batch, hook);
    std::vector<int> positions(batch.rows());
    for (std::size_t i = 0; i < positions.size(); ++i) positions[i] = static_cast<int>(i % batch.pos);
    Var<T> pos = ops::embedding(ctx, pv["pos_embed.W_pos"], positions, {batch.batch, batch.pos});  // [B, P, D]
    if constexpr (Ctx::records)
      if (!pos.needs_grad()) ctx.tape().watch(pos);
    hook("hook_pos_embed", pos);
    return ops::add(ctx, tok, pos);
  }
};

struct NoPositions {
  static constexpr std::string_view name = "none";
  template <class Declare>
  static void parameters(const ModelConfig& c, Declare&& declare) {
    declare(ParamDecl{"embed.W_E", {c.vocab_size, c.n_embd}, ParamKind::embedding, {}});
  }
  template <class Ctx, class V, class Hook, class T = typename Ctx::scalar>
  static Var<T> input(const Ctx& ctx, const V& pv, const ModelConfig& c, const Batch& batch, Hook&& hook) {
    return detail::token_embedding(ctx, pv, c, batch, hook);
  }
};

}  // namespace circuitry
