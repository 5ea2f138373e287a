#pragma once
// TransformerLens checkpoints (DESIGN.md section 3): config.json with HookedTransformerConfig's
// fields and model.safetensors (or its shards, see tensor_store.hpp) with the model's
// state_dict() names:
//   embed.W_E [d_vocab, d_model]              pos_embed.W_pos [n_ctx, d_model]
//   blocks.{l}.ln1.w / .b [d_model]           blocks.{l}.ln2.w / .b
//   blocks.{l}.attn.W_Q / W_K / W_V [n_heads, d_model, d_head]   b_Q / b_K / b_V [n_heads, d_head]
//   blocks.{l}.attn.W_O [n_heads, d_head, d_model]               b_O [d_model]
//   blocks.{l}.mlp.W_in [d_model, d_mlp], b_in, W_out [d_mlp, d_model], b_out
//   ln_final.w / .b                           unembed.W_U [d_model, d_vocab_out], unembed.b_U
// Buffers (blocks.{l}.attn.mask, IGNORE) are ignored. The loader converts to circuitry's
// storage: W_Q | W_K | W_V fused into one [d_model, 3 H d_head] matrix, head-major columns;
// W_U transposed to [d_vocab_out, d_model]. normalization_type "LNPre" (a layer norm whose
// weights were folded away) loads as a layer norm with w = 1, b = 0.
// A setting this reader does not take (rotary or shortformer positions, RMS norms, SoLU,
// parallel blocks, grouped-query attention, ...) is one error naming the config field; the
// rotary, RMS, gated, parallel and grouped models are read from Hugging Face directories
// (io/hf_family.hpp).
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuitry/io/checkpoint.hpp"
#include "circuitry/io/tensor_store.hpp"

namespace circuitry::io {

namespace detail {

/// A string-valued setting that must be one of `allowed` (null reads as "null").
inline std::string choice(const nlohmann::json& config, const std::string& where, const std::string& key,
                          const std::string& fallback, const std::vector<std::string>& allowed, const std::string& why) {
  const auto found = config.find(key);
  if (found == config.end()) return fallback;
  const std::string value = found->is_null() ? "null" : found->is_string() ? found->get<std::string>() : found->dump();
  for (const auto& a : allowed)
    if (value == a) return value;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  throw Error(where + ": \"" + key + "\" is " + found->dump() + ", which circuitry does not implement (it runs " + list + ")" +
              (why.empty() ? "" : "; " + why));
}

/// A HookedTransformerConfig setting that changes the math: refused unless it holds the
/// value circuitry implements (TransformerLens' default).
inline void require_tl_setting(const nlohmann::json& config, const std::string& where, const std::string& key,
                               const nlohmann::json& supported) {
  const auto found = config.find(key);
  if (found != config.end() && *found != supported)
    throw Error(where + ": \"" + key + "\" is " + found->dump() + "; circuitry implements only " + supported.dump() +
                " (TransformerLens' default)");
}

}  // namespace detail

/// Whether a config.json object holds HookedTransformerConfig fields rather than Hugging Face ones.
inline bool is_transformer_lens_config(const nlohmann::json& json) {
  return json.is_object() && json.contains("d_model") && json.contains("n_layers") && !json.contains("model_type");
}

/// Reads a TransformerLens config.json (HookedTransformerConfig fields).
inline ModelConfig read_transformer_lens_config(const std::filesystem::path& config_json) {
  const std::string where = config_json.string();
  const nlohmann::json json = read_json_file(config_json);
  if (!json.is_object()) throw Error(where + ": expected a JSON object of model settings, got " + json.type_name());
  auto required_size = [&](const std::string& key) {
    const auto found = json.find(key);
    if (found == json.end())
      throw Error(where + ": missing key \"" + key +
                  "\" (a TransformerLens config.json has n_layers, d_model, d_head, n_heads, d_vocab and n_ctx)");
    return detail::positive_size(*found, where, key);
  };
  ModelConfig c;
  c.n_layer = required_size("n_layers");
  c.n_embd = required_size("d_model");
  c.head_dim = required_size("d_head");
  c.n_head = required_size("n_heads");
  c.vocab_size = required_size("d_vocab");
  c.n_positions = required_size("n_ctx");
  c.attn_only = detail::optional_bool(json, where, "attn_only", false);
  // d_vocab_out: -1 (TransformerLens' default) or absent means d_vocab.
  if (const auto out = json.find("d_vocab_out"); out != json.end() && !(out->is_number_integer() && out->get<long long>() == -1))
    c.vocab_out = detail::positive_size(*out, where, "d_vocab_out");
  if (!c.attn_only) {
    c.n_inner = required_size("d_mlp");
    c.act_fn = detail::choice(json, where, "act_fn", "", {"gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu", "relu"},
                              "circuitry reads SiLU and gated-MLP models (Llama, Qwen2, Mistral) from Hugging Face directories");
    if (c.act_fn.empty()) throw Error(where + ": missing key \"act_fn\" (the MLP's activation)");
    // The same tanh approximation of GELU under three names (TransformerLens utils.gelu_new / gelu_fast;
    // torch's gelu(approximate="tanh")).
    if (c.act_fn == "gelu_pytorch_tanh" || c.act_fn == "gelu_fast") c.act_fn = "gelu_new";
  }
  const std::string norm = detail::choice(json, where, "normalization_type", "LN", {"LN", "LNPre", "null"},
                                          "circuitry reads RMS-norm models (Llama, Qwen2, Mistral) from Hugging Face directories");
  c.normalization = norm == "null" ? "none" : "LN";
  c.attention_dir = detail::choice(json, where, "attention_dir", "causal", {"causal", "bidirectional"}, "");
  detail::choice(json, where, "positional_embedding_type", "standard", {"standard"},
                 "circuitry reads rotary models (Pythia, Llama, ...) from Hugging Face directories; shortformer positions are not a component of circuitry");
  if (const auto eps = json.find("eps"); eps != json.end()) {
    if (!eps->is_number() || !(eps->get<double>() > 0) || !std::isfinite(eps->get<double>()))
      throw Error(where + ": \"eps\" must be a positive number, got " + eps->dump());
    c.layer_norm_epsilon = eps->get<double>();
  }
  // Settings that change the math: refused unless they hold TransformerLens' default.
  detail::require_tl_setting(json, where, "use_attn_scale", true);
  detail::require_tl_setting(json, where, "use_local_attn", false);
  detail::require_tl_setting(json, where, "gated_mlp", false);
  detail::require_tl_setting(json, where, "parallel_attn_mlp", false);
  detail::require_tl_setting(json, where, "n_key_value_heads", nullptr);
  detail::require_tl_setting(json, where, "use_qk_norm", false);
  detail::require_tl_setting(json, where, "final_rms", false);
  detail::require_tl_setting(json, where, "post_embedding_ln", false);
  detail::require_tl_setting(json, where, "use_normalization_before_and_after", false);
  detail::require_tl_setting(json, where, "scale_attn_by_inverse_layer_idx", false);
  detail::require_tl_setting(json, where, "attn_scores_soft_cap", -1.0);
  detail::require_tl_setting(json, where, "output_logits_soft_cap", -1.0);
  if (const auto scale = json.find("attn_scale"); scale != json.end() && scale->is_number() &&
                                                   std::abs(scale->get<double>() - std::sqrt(double(c.head_dim))) > 1e-9)
    throw Error(where + ": \"attn_scale\" is " + scale->dump() + "; circuitry scales attention scores by 1/sqrt(d_head) = 1/" +
                std::to_string(std::sqrt(double(c.head_dim))));
  c.tie_word_embeddings = false;  // TransformerLens always has its own W_U
  return c;
}

/// TransformerLens' state_dict names, which are circuitry's parameter names but for the fused and
/// transposed ones: W_Q, W_K, W_V [H, D, d_head] fill the q, k, v columns of W_QKV, b_Q, b_K,
/// b_V [H, d_head] its bias, W_O [H, d_head, D] is W_O [H d_head, D], and W_U [D, d_vocab_out] is
/// stored transposed. LNPre (layer_norm_weights false): the norms' gains are one and biases zero.
inline TensorTable transformer_lens_tensor_table(bool layer_norm_weights) {
  using enum TensorLayout;
  TensorTable t;
  const TensorLayout gain = layer_norm_weights ? same : ones, bias = layer_norm_weights ? same : zeros;
  t.rules = {
      {"embed.W_E", "embed.W_E"},
      {"pos_embed.W_pos", "pos_embed.W_pos"},
      {"blocks.{l}.ln1.w", "blocks.{l}.ln1.w", gain},
      {"blocks.{l}.ln1.b", "blocks.{l}.ln1.b", bias},
      {"blocks.{l}.attn.W_Q", "blocks.{l}.attn.W_QKV", heads_to_columns, 0},
      {"blocks.{l}.attn.W_K", "blocks.{l}.attn.W_QKV", heads_to_columns, 1},
      {"blocks.{l}.attn.W_V", "blocks.{l}.attn.W_QKV", heads_to_columns, 2},
      {"blocks.{l}.attn.b_Q", "blocks.{l}.attn.b_QKV", heads_split, 0},
      {"blocks.{l}.attn.b_K", "blocks.{l}.attn.b_QKV", heads_split, 1},
      {"blocks.{l}.attn.b_V", "blocks.{l}.attn.b_QKV", heads_split, 2},
      {"blocks.{l}.attn.W_O", "blocks.{l}.attn.W_O", heads_split},
      {"blocks.{l}.attn.b_O", "blocks.{l}.attn.b_O"},
      {"blocks.{l}.ln2.w", "blocks.{l}.ln2.w", gain},
      {"blocks.{l}.ln2.b", "blocks.{l}.ln2.b", bias},
      {"blocks.{l}.mlp.W_in", "blocks.{l}.mlp.W_in"},
      {"blocks.{l}.mlp.b_in", "blocks.{l}.mlp.b_in"},
      {"blocks.{l}.mlp.W_out", "blocks.{l}.mlp.W_out"},
      {"blocks.{l}.mlp.b_out", "blocks.{l}.mlp.b_out"},
      {"ln_final.w", "ln_final.w", gain},
      {"ln_final.b", "ln_final.b", bias},
      {"unembed.W_U", "unembed.W_U", transposed},
      {"unembed.b_U", "unembed.b_U"},
  };
  t.ignored = [](const std::string& name) { return name.ends_with(".attn.mask") || name.ends_with(".attn.IGNORE"); };
  t.config_words = "config.json (normalization_type, attn_only and the sizes decide which tensors a model has)";
  return t;
}

/// Reads the tensors of dir (TransformerLens names; model.safetensors or shards) into
/// circuitry's storage. Every parameter the config implies must be present with exactly its
/// shape, and every tensor stored must be used (except buffers). Sets config.unembed_bias from
/// the tensors present.
template <class T>
Weights<T> load_transformer_lens_weights(const std::filesystem::path& dir, ModelConfig& c, bool layer_norm_weights) {
  const TensorStore store = TensorStore::open(dir);
  const std::string where = store.path().string();
  const std::string last_layer = "blocks." + std::to_string(c.n_layer - 1) + ".attn.W_Q";
  if (!store.contains(last_layer))
    throw Error(where + ": missing tensor '" + last_layer + "': config.json says n_layers = " + std::to_string(c.n_layer) +
                " but the file holds " + std::to_string(store.size()) + " tensors; does config.json belong to this model?");
  c.unembed_bias = store.contains("unembed.b_U");
  return load_parameters<T>(store, where, declared_parameters(c), transformer_lens_tensor_table(layer_norm_weights), c);
}

/// Loads a TransformerLens checkpoint directory: dir/config.json and dir/model.safetensors (or shards).
template <class T>
Checkpoint<T> load_transformer_lens(const std::filesystem::path& dir) {
  Checkpoint<T> checkpoint;
  checkpoint.config = read_transformer_lens_config(dir / "config.json");
  const nlohmann::json json = read_json_file(dir / "config.json");
  const bool weights = json.value("normalization_type", nlohmann::json("LN")) == "LN";
  checkpoint.weights = load_transformer_lens_weights<T>(dir, checkpoint.config, weights);
  return checkpoint;
}

}  // namespace circuitry::io
