#pragma once
// Model sizes and component choices, read at run time from a checkpoint's config.json
// (DESIGN.md section 3: Hugging Face GPT-2 keys or TransformerLens HookedTransformerConfig keys).
// The sizes are plain numbers; the component choices (norm, attention direction, activation,
// positions) select one of the architecture types of models/architectures.hpp.
#include <cstddef>
#include <string>

namespace circuitry {

struct ModelConfig {
  std::size_t n_layer = 0;
  std::size_t n_head = 0;
  std::size_t n_embd = 0;       // d_model
  std::size_t n_positions = 0;  // context length (n_ctx)
  std::size_t vocab_size = 0;   // input vocabulary (d_vocab)
  std::size_t n_inner = 0;      // MLP width; config.json's null means 4 * n_embd
  std::size_t head_dim = 0;     // d_head; 0 means n_embd / n_head (GPT-2)
  std::size_t vocab_out = 0;    // width of the logits (d_vocab_out); 0 means vocab_size
  double layer_norm_epsilon = 1e-5;
  bool attn_only = false;           // no MLPs (TransformerLens attn-only models); config key "attn_only"
  bool tie_word_embeddings = true;  // false: a separate unembedding [vocab_out, n_embd]
  bool unembed_bias = false;        // logits = ... + b_U (TransformerLens' unembed.b_U)

  // Component choices, spelled as TransformerLens spells them (the components' `name`s).
  std::string normalization = "LN";       // "LN" | "none"
  std::string attention_dir = "causal";   // "causal" | "bidirectional"
  std::string act_fn = "gelu_new";        // "gelu_new" | "gelu" | "relu" (ignored when attn_only)
  std::string positional = "standard";    // "standard" (learned) | "none"

  std::size_t d_head() const { return head_dim ? head_dim : n_embd / n_head; }
  /// Width of the attention's q, k, v and z blocks: n_head * d_head (n_embd for GPT-2).
  std::size_t d_attn() const { return n_head * d_head(); }
  std::size_t n_outputs() const { return vocab_out ? vocab_out : vocab_size; }
};

}  // namespace circuitry
