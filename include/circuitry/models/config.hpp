#pragma once
// Model sizes and component choices, read at run time from a checkpoint's config.json
// (DESIGN.md section 3: Hugging Face GPT-2 keys or TransformerLens HookedTransformerConfig keys).
// The sizes are plain numbers; the component choices (norm, attention direction, activation,
// positions) select one of the architecture types of models/architectures.hpp.
#include <cstddef>
#include <string>
#include <vector>

#include "circuitry/ops/rope_scaling.hpp"

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
  // Which biases exist (GPT-2 and Pythia have all; Llama and Mistral none; Qwen2 only b_QKV).
  bool attn_qkv_bias = true;  // b_Q | b_K | b_V
  bool attn_out_bias = true;  // b_O
  bool mlp_bias = true;       // b_in and b_out
  // An RMS norm over d_head of every head's query and key, before rotary (Qwen3).
  bool qk_norm = false;
  // Grouped-query attention: n_kv_head heads of keys and values, each shared by
  // n_head / n_kv_head consecutive query heads (Ainslie et al. 2023). 0 means n_head.
  std::size_t n_kv_head = 0;
  // Rotary positions (Su et al. 2021), used when positional == "rotary": the first rotary_dim
  // dimensions of each head's q and k are rotated (0 means all of d_head), at frequencies
  // rotary_base^(-2i / rotary_dim), scaled as rope_scaling says (linear, llama3; none by default).
  std::size_t rotary_dim = 0;
  double rotary_base = 10000.0;
  ops::RopeScaling rope_scaling;
  // Gemma 3's sliding-window layers turn at their own base, without scaling; 0: rotary_base.
  double rotary_base_local = 0;
  bool gated_mlp = false;          // MLP = W_out (act(x W_gate) * (x W_in)) (Llama's SwiGLU)
  bool parallel_attn_mlp = false;  // attention and MLP read the same residual (GPT-NeoX, GPT-J)
  // Gemma 2 and 3: a norm of the block's kind after the heads' sum (ln1_post) and after the MLP
  // (ln2_post), before each enters the residual (DESIGN.md section 2: a head's node is its share).
  bool post_attention_norm = false;
  bool post_mlp_norm = false;
  // The input node's embedding times this (Gemma: sqrt(d_model)); 0: none.
  double embedding_multiplier = 0;
  // Attention scores: scale (0: 1 / sqrt(d_head); Gemma: query_pre_attn_scalar^-1/2) and a soft
  // cap c tanh(s / c) (Gemma 2; 0: none). final_softcap caps the logits the same way.
  double attn_scale = 0;
  double attn_softcap = 0;
  double final_softcap = 0;
  // Sliding-window attention (Mistral; Gemma's local layers): the last sliding_window keys, on
  // the layers sliding_layers marks (empty: every layer); 0: none.
  std::size_t sliding_window = 0;
  std::vector<bool> sliding_layers;

  // Component choices, spelled as TransformerLens spells them (the components' `name`s).
  std::string normalization = "LN";       // "LN" | "RMS" | "none"
  std::string attention_dir = "causal";   // "causal" | "bidirectional"
  std::string act_fn = "gelu_new";        // "gelu_new" | "gelu" | "relu" | "silu" (ignored when attn_only)
  std::string positional = "standard";    // "standard" (learned) | "rotary" | "none"

  std::size_t d_head() const { return head_dim ? head_dim : n_embd / n_head; }
  /// Width of the attention's q, k, v and z blocks: n_head * d_head (n_embd for GPT-2).
  std::size_t d_attn() const { return n_head * d_head(); }
  std::size_t n_outputs() const { return vocab_out ? vocab_out : vocab_size; }
  std::size_t kv_heads() const { return n_kv_head ? n_kv_head : n_head; }
  /// Columns of the fused q | k | v projection: H d_head + 2 KV d_head (3 n_embd for GPT-2).
  std::size_t qkv_width() const { return (n_head + 2 * kv_heads()) * d_head(); }
  std::size_t rotary_dims() const { return rotary_dim ? rotary_dim : d_head(); }
  /// Whether layer l attends through the sliding window.
  bool sliding(std::size_t l) const { return sliding_window && (sliding_layers.empty() || (l < sliding_layers.size() && sliding_layers[l])); }
  /// Layer l's window of keys (0: every earlier key).
  std::size_t window(std::size_t l) const { return sliding(l) ? sliding_window : 0; }
  /// Whether layer l turns at rotary_base_local (Gemma 3's local layers).
  bool local_rotary(std::size_t l) const { return rotary_base_local != 0 && sliding(l); }
};

}  // namespace circuitry
