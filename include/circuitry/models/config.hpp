#pragma once
// Model sizes, read at run time from a Hugging Face GPT-2 config.json (DESIGN.md section 3).
#include <cstddef>
#include <string>

namespace circuitry {

struct ModelConfig {
  std::size_t n_layer = 0;
  std::size_t n_head = 0;
  std::size_t n_embd = 0;       // d_model
  std::size_t n_positions = 0;  // context length
  std::size_t vocab_size = 0;
  std::size_t n_inner = 0;      // MLP width; config.json's null means 4 * n_embd
  double layer_norm_epsilon = 1e-5;
  bool attn_only = false;       // no MLPs (TransformerLens attn-only models); config key "attn_only"
  bool tie_word_embeddings = true;  // false: a separate lm_head.weight [vocab, n_embd]

  std::size_t d_head() const { return n_embd / n_head; }
};

}  // namespace circuitry
