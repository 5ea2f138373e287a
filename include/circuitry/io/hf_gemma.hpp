#pragma once
// Hugging Face directories of Gemma 2 and Gemma 3 language models, by config.json's model_type
// (DESIGN.md section 3):
//   gemma2       RMSNorms applied as x (1 + w), a norm after the attention and after the MLP,
//                the embedding times sqrt(hidden_size), gated GELU (tanh), scores scaled by
//                query_pre_attn_scalar^-1/2 and soft-capped (attn_logit_softcapping), logits
//                soft-capped (final_logit_softcapping), sliding-window layers (layer_types;
//                by default every other layer from the first), tied embeddings
//   gemma3_text  the same without the soft caps (unless the config sets them), with RMS norms of
//                each head's q and k (q_norm, k_norm), and the sliding layers (by default five of
//                every six) turning at their own rotary base (rope_local_base_freq, or transformers
//                5's rope_parameters.sliding_attention)
// The (1 + w) of every norm is folded into the gain at load (TensorLayout::plus_one), so the
// model's RMS norms are Llama's. Gemma 3's multimodal wrapper (model_type gemma3) is refused:
// its text model is a gemma3_text directory. Keys left out take transformers' class defaults.
#include <cmath>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "circuitry/io/hf_family.hpp"

namespace circuitry::io {

/// The model_type values this file reads.
inline bool is_hf_gemma_model_type(const std::string& type) { return type == "gemma2" || type == "gemma3_text" || type == "gemma3"; }

namespace detail {

/// A soft cap: null (none) or a positive number.
inline double optional_cap(const nlohmann::json& json, const std::string& where, const std::string& key, double fallback) {
  const auto found = json.find(key);
  if (found == json.end()) return fallback;
  return found->is_null() ? 0.0 : positive_number(*found, where, key);
}

/// Which layers slide: layer_types ("sliding_attention" | "full_attention" per layer), else the
/// config class's pattern (Gemma 2: layers 0, 2, 4, ...; Gemma 3: all but every sliding_window_pattern-th).
inline std::vector<bool> gemma_sliding_layers(const nlohmann::json& json, const std::string& where, std::size_t L, bool gemma3) {
  if (auto marked = read_sliding_layer_types(json, where, L)) return std::move(*marked);
  std::vector<bool> sliding(L);
  std::size_t pattern = gemma3 ? 6 : 2;
  if (const auto p = json.find("sliding_window_pattern"); gemma3 && p != json.end()) pattern = positive_size(*p, where, "sliding_window_pattern");
  for (std::size_t l = 0; l < L; ++l) sliding[l] = (l + 1) % pattern != 0;
  return sliding;
}

/// Gemma 3's two rotary settings: the global layers' (theta, scaling) and the local layers' theta.
inline void read_gemma3_rope(const nlohmann::json& json, const std::string& where, ModelConfig& c) {
  double global = 1'000'000.0, local = 10'000.0;  // Gemma3TextConfig.default_theta
  ops::RopeScaling scaling;
  if (const auto p = json.find("rope_parameters"); p != json.end() && !p->is_null() && p->contains("full_attention")) {
    for (const char* kind : {"full_attention", "sliding_attention"}) {
      const auto q = p->find(kind);
      if (q == p->end()) continue;
      const std::string key = std::string("rope_parameters.") + kind;
      if (!q->is_object()) throw Error(where + ": \"" + key + "\" must be an object, got " + q->dump());
      const ops::RopeScaling s = read_rope_scaling(json, *q, where, key, c.n_positions);
      double& theta = kind == std::string("full_attention") ? global : local;
      if (const auto t = q->find("rope_theta"); t != q->end()) theta = positive_number(*t, where, key + ".rope_theta");
      if (kind == std::string("full_attention")) scaling = s;
      else if (s.type != "default")
        throw Error(where + ": \"" + key + "\" scales the local layers' rotary; circuitry scales the global layers' only");
    }
  } else {
    if (const auto t = json.find("rope_theta"); t != json.end()) global = positive_number(*t, where, "rope_theta");
    if (const auto t = json.find("rope_local_base_freq"); t != json.end()) local = positive_number(*t, where, "rope_local_base_freq");
    if (const auto s = json.find("rope_scaling"); s != json.end() && !s->is_null()) {
      if (!s->is_object()) throw Error(where + ": \"rope_scaling\" must be null or an object, got " + s->dump());
      scaling = read_rope_scaling(json, *s, where, "rope_scaling", c.n_positions);
    }
  }
  c.rotary_base = global;
  c.rope_scaling = scaling;
  c.rotary_base_local = local;
}

}  // namespace detail

/// Reads a config.json of model_type gemma2 or gemma3_text.
inline ModelConfig read_hf_gemma_config(const std::filesystem::path& config_json) {
  const std::string where = config_json.string();
  const nlohmann::json json = read_json_file(config_json);
  if (!json.is_object()) throw Error(where + ": expected a JSON object of model settings, got " + json.type_name());
  const std::string type = json.value("model_type", "");
  if (type == "gemma3")
    throw Error(where + ": model_type \"gemma3\" is Gemma 3's multimodal wrapper; circuitry reads its language model, a "
                        "\"gemma3_text\" directory (Gemma3ForCausalLM)");
  require(type == "gemma2" || type == "gemma3_text", where + ": model_type \"" + type + "\" is not gemma2 or gemma3_text");
  const bool gemma3 = type == "gemma3_text";
  auto required_size = [&](const std::string& key) {
    const auto found = json.find(key);
    if (found == json.end())
      throw Error(where + ": missing key \"" + key + "\" (a " + type +
                  " config.json has num_hidden_layers, num_attention_heads, hidden_size, intermediate_size, "
                  "max_position_embeddings and vocab_size)");
    return detail::positive_size(*found, where, key);
  };
  auto optional_size = [&](const std::string& key, std::size_t fallback) {
    const auto found = json.find(key);
    return found == json.end() || found->is_null() ? fallback : detail::positive_size(*found, where, key);
  };
  ModelConfig c;
  c.n_layer = required_size("num_hidden_layers");
  c.n_head = required_size("num_attention_heads");
  c.n_embd = required_size("hidden_size");
  c.n_inner = required_size("intermediate_size");
  c.n_positions = required_size("max_position_embeddings");
  c.vocab_size = required_size("vocab_size");
  c.head_dim = optional_size("head_dim", 256);  // the config classes' defaults from here on
  c.n_kv_head = optional_size("num_key_value_heads", 4);
  if (c.n_head % c.n_kv_head != 0)
    throw Error(where + ": num_attention_heads " + std::to_string(c.n_head) + " is not divisible by num_key_value_heads " +
                std::to_string(c.n_kv_head));
  if (c.n_kv_head == c.n_head) c.n_kv_head = 0;
  c.layer_norm_epsilon = json.contains("rms_norm_eps") ? detail::positive_number(json["rms_norm_eps"], where, "rms_norm_eps") : 1e-6;
  const std::string act = json.value("hidden_activation", "gelu_pytorch_tanh");
  if (act != "gelu_pytorch_tanh" && act != "gelu_new")
    throw Error(where + ": \"hidden_activation\" is \"" + act + "\"; circuitry runs " + type + " models with \"gelu_pytorch_tanh\" only");
  if (detail::optional_bool(json, where, "attention_bias", false))
    throw Error(where + ": \"attention_bias\" is true; circuitry runs " + type + " models without attention biases");
  if (const auto bi = json.find("use_bidirectional_attention"); bi != json.end() && !bi->is_null() &&
                                                                  detail::optional_bool(json, where, "use_bidirectional_attention", false))
    throw Error(where + ": \"use_bidirectional_attention\" is true; circuitry runs " + type + " models with causal attention only");

  c.normalization = "RMS";
  c.act_fn = "gelu_new";  // gelu_pytorch_tanh
  c.gated_mlp = true;
  c.positional = "rotary";
  c.attn_qkv_bias = c.attn_out_bias = c.mlp_bias = false;
  c.tie_word_embeddings = detail::optional_bool(json, where, "tie_word_embeddings", true);
  c.qk_norm = gemma3;
  c.post_attention_norm = c.post_mlp_norm = true;
  c.embedding_multiplier = std::sqrt(double(c.n_embd));
  const double query_scalar =
      json.contains("query_pre_attn_scalar") ? detail::positive_number(json["query_pre_attn_scalar"], where, "query_pre_attn_scalar") : 256.0;
  c.attn_scale = std::pow(query_scalar, -0.5);
  c.attn_softcap = detail::optional_cap(json, where, "attn_logit_softcapping", gemma3 ? 0.0 : 50.0);
  c.final_softcap = detail::optional_cap(json, where, "final_logit_softcapping", gemma3 ? 0.0 : 30.0);
  c.sliding_window = 4096;
  if (const auto w = json.find("sliding_window"); w != json.end()) c.sliding_window = w->is_null() ? 0 : detail::positive_size(*w, where, "sliding_window");
  if (c.sliding_window) c.sliding_layers = detail::gemma_sliding_layers(json, where, c.n_layer, gemma3);
  if (gemma3) {
    detail::read_gemma3_rope(json, where, c);
  } else {
    const auto rope = detail::read_rope(json, where, false, c.n_positions);
    c.rotary_base = rope.theta;
    c.rope_scaling = rope.scaling;
  }
  return c;
}

/// The tensor names of a gemma2 or gemma3_text checkpoint (with or without "model.") and how each
/// becomes a parameter: Linear weights transposed, q/k/v and gate/up into the fused parameters,
/// every norm gain plus one. lm_head is a copy of the tied embedding, ignored.
inline TensorTable hf_gemma_tensor_table(const ModelConfig& c) {
  using enum TensorLayout;
  TensorTable t;
  t.roots = {"model."};
  t.rules = {
      {"embed_tokens.weight", "embed.W_E"},
      {"layers.{l}.input_layernorm.weight", "blocks.{l}.ln1.w", plus_one},
      {"layers.{l}.self_attn.q_proj.weight", "blocks.{l}.attn.W_QKV", transposed, 0},
      {"layers.{l}.self_attn.k_proj.weight", "blocks.{l}.attn.W_QKV", transposed, 1},
      {"layers.{l}.self_attn.v_proj.weight", "blocks.{l}.attn.W_QKV", transposed, 2},
      {"layers.{l}.self_attn.q_norm.weight", "blocks.{l}.attn.q_norm.w", plus_one},
      {"layers.{l}.self_attn.k_norm.weight", "blocks.{l}.attn.k_norm.w", plus_one},
      {"layers.{l}.self_attn.o_proj.weight", "blocks.{l}.attn.W_O", transposed},
      {"layers.{l}.post_attention_layernorm.weight", "blocks.{l}.ln1_post.w", plus_one},
      {"layers.{l}.pre_feedforward_layernorm.weight", "blocks.{l}.ln2.w", plus_one},
      {"layers.{l}.mlp.gate_proj.weight", "blocks.{l}.mlp.W_gate_in", transposed, 0},
      {"layers.{l}.mlp.up_proj.weight", "blocks.{l}.mlp.W_gate_in", transposed, 1},
      {"layers.{l}.mlp.down_proj.weight", "blocks.{l}.mlp.W_out", transposed},
      {"layers.{l}.post_feedforward_layernorm.weight", "blocks.{l}.ln2_post.w", plus_one},
      {"norm.weight", "ln_final.w", plus_one},
      {"lm_head.weight", "unembed.W_U"},
  };
  const bool tied = c.tie_word_embeddings;
  t.ignored = [tied](const std::string& name) { return name.ends_with(".inv_freq") || (tied && name == "lm_head.weight"); };
  return t;
}

/// Loads a gemma2 or gemma3_text directory: config.json and model.safetensors (or an index and its shards).
template <class T>
Checkpoint<T> load_hf_gemma(const std::filesystem::path& dir) {
  Checkpoint<T> checkpoint;
  checkpoint.config = read_hf_gemma_config(dir / "config.json");
  const TensorStore store = TensorStore::open(dir);
  const ModelConfig& c = checkpoint.config;
  const std::string last_layer = "layers." + std::to_string(c.n_layer - 1) + ".input_layernorm.weight";
  if (!store.contains("model." + last_layer) && !store.contains(last_layer))
    throw Error(store.path().string() + ": missing tensor 'model." + last_layer + "': config.json says num_hidden_layers = " +
                std::to_string(c.n_layer) + " but the checkpoint holds " + std::to_string(store.size()) +
                " tensors; does config.json belong to this model?");
  checkpoint.weights = load_parameters<T>(store, store.path().string(), declared_parameters(c), hf_gemma_tensor_table(c), c);
  return checkpoint;
}

}  // namespace circuitry::io
