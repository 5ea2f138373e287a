#pragma once
// Hugging Face directories of the model families researchers use today, by config.json's
// model_type (DESIGN.md section 3):
//   gpt_neox (Pythia)        LayerNorms, rotary on rotary_pct of each head, parallel residual
//                            (use_parallel_residual), exact GELU, untied embed_out
//   llama, qwen2, qwen3,     RMSNorms, rotary on all of each head, SwiGLU MLP, grouped-query
//   mistral                  attention (num_key_value_heads); Qwen2 adds q/k/v biases,
//                            Qwen3 RMS norms of each head's q and k (q_norm, k_norm)
// Every Linear weight is PyTorch's [out, in] (y = x W^T + b); circuitry stores y = x W + b, so
// the loader transposes. q, k and v are fused into circuitry's W_QKV [D, (H + 2 KV) d_head]:
// Llama's q_proj, k_proj, v_proj side by side; GPT-NeoX's query_key_value, whose rows are
// grouped per head (head h's q, k, v are rows h*3*dh + [0, dh), [dh, 2dh), [2dh, 3dh)), regrouped
// into q | k | v blocks. gate_proj | up_proj become one [D, 2 d_mlp] (models/components/mlp.hpp).
// The tensors are read by the table of hf_family_tensor_table (io/parameter_table.hpp).
// Both transformers 5's config keys (rope_parameters, dtype) and 4.x's (rope_theta, rope_scaling,
// rotary_pct, rotary_emb_base, torch_dtype) are read, rope scaling of rope_type linear and llama3
// (Llama 3.1, 3.2) included, and sliding windows (Mistral's on every layer; Qwen2/Qwen3's with
// use_sliding_window on the layers layer_types marks, else from max_window_layers on). A setting
// circuitry does not implement (another rope scaling, MoE, another activation) is one error naming the key.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuitry/io/checkpoint.hpp"
#include "circuitry/io/tensor_store.hpp"
#include "circuitry/ops/rope_scaling.hpp"

namespace circuitry::io {

/// The model_type values this file reads.
inline bool is_hf_family_model_type(const std::string& type) {
  return type == "gpt_neox" || type == "llama" || type == "qwen2" || type == "qwen3" || type == "mistral";
}

namespace detail {

/// The rotary settings in either spelling: transformers 5's rope_parameters {rope_type,
/// rope_theta, partial_rotary_factor, factor, ...}, or 4.x's rope_theta + rope_scaling {rope_type
/// or type, factor, ...} (Llama family) and rotary_emb_base + rotary_pct (GPT-NeoX). rope_type
/// "default" (no scaling), "linear" and "llama3" are implemented (ops/rope_scaling.hpp).
struct RopeSettings {
  double theta = 10000.0;
  double fraction = 1.0;  // of each head's dimensions
  ops::RopeScaling scaling;
};

inline double positive_number(const nlohmann::json& value, const std::string& where, const std::string& key) {
  if (!value.is_number() || !(value.get<double>() > 0) || !std::isfinite(value.get<double>()))
    throw Error(where + ": \"" + key + "\" must be a positive number, got " + value.dump());
  return value.get<double>();
}

/// The scaling of a rope_scaling or rope_parameters object `params` (named `key`). llama3's
/// context length is, as transformers' standardize_rope_params takes it, a top-level
/// original_max_position_embeddings, else the object's, else max_position_embeddings.
inline ops::RopeScaling read_rope_scaling(const nlohmann::json& json, const nlohmann::json& params, const std::string& where,
                                          const std::string& key, std::size_t max_positions) {
  ops::RopeScaling scaling;
  const auto type = params.find("rope_type") != params.end() ? params.find("rope_type") : params.find("type");
  if (type == params.end() || *type == "default") return scaling;
  if (*type != "linear" && *type != "llama3")
    throw Error(where + ": \"" + key + "\" asks for rope_type " + type->dump() +
                "; circuitry implements rope_type \"default\" (no scaling), \"linear\" and \"llama3\" only");
  scaling.type = type->get<std::string>();
  auto number = [&](const char* field) {
    const auto found = params.find(field);
    if (found == params.end()) throw Error(where + ": \"" + key + "\" of rope_type " + type->dump() + " has no \"" + field + "\"");
    return positive_number(*found, where, key + "." + field);
  };
  scaling.factor = number("factor");
  if (scaling.type == "llama3") {
    scaling.low_freq_factor = number("low_freq_factor");
    scaling.high_freq_factor = number("high_freq_factor");
    if (!(scaling.high_freq_factor > scaling.low_freq_factor))
      throw Error(where + ": \"" + key + ".high_freq_factor\" must be larger than low_freq_factor");
    scaling.original_context = double(max_positions);
    if (const auto original = params.find("original_max_position_embeddings"); original != params.end())
      scaling.original_context = positive_number(*original, where, key + ".original_max_position_embeddings");
    if (const auto original = json.find("original_max_position_embeddings"); original != json.end())
      scaling.original_context = positive_number(*original, where, "original_max_position_embeddings");
  }
  return scaling;
}

/// Which layers config.json's layer_types marks "sliding_attention" (the others "full_attention"),
/// or nothing when it has no layer_types.
inline std::optional<std::vector<bool>> read_sliding_layer_types(const nlohmann::json& json, const std::string& where, std::size_t L) {
  const auto types = json.find("layer_types");
  if (types == json.end() || types->is_null()) return std::nullopt;
  if (!types->is_array() || types->size() != L)
    throw Error(where + ": \"layer_types\" must list one type per layer (" + std::to_string(L) + "), got " + types->dump());
  std::vector<bool> sliding(L);
  for (std::size_t l = 0; l < L; ++l) {
    const auto& t = (*types)[l];
    if (t != "sliding_attention" && t != "full_attention")
      throw Error(where + ": \"layer_types\"[" + std::to_string(l) + "] is " + t.dump() +
                  "; circuitry reads \"sliding_attention\" and \"full_attention\"");
    sliding[l] = t == "sliding_attention";
  }
  return sliding;
}

inline RopeSettings read_rope(const nlohmann::json& json, const std::string& where, bool neox, std::size_t max_positions) {
  RopeSettings rope;
  if (const auto p = json.find("rope_parameters"); p != json.end() && !p->is_null()) {
    if (!p->is_object()) throw Error(where + ": \"rope_parameters\" must be an object, got " + p->dump());
    rope.scaling = read_rope_scaling(json, *p, where, "rope_parameters", max_positions);
    if (const auto t = p->find("rope_theta"); t != p->end()) rope.theta = positive_number(*t, where, "rope_parameters.rope_theta");
    if (const auto f = p->find("partial_rotary_factor"); f != p->end())
      rope.fraction = positive_number(*f, where, "rope_parameters.partial_rotary_factor");
  }
  if (const auto s = json.find("rope_scaling"); s != json.end() && !s->is_null()) {
    if (!s->is_object()) throw Error(where + ": \"rope_scaling\" must be null or an object, got " + s->dump());
    if (const ops::RopeScaling scaling = read_rope_scaling(json, *s, where, "rope_scaling", max_positions); scaling.type != "default")
      rope.scaling = scaling;
  }
  const char* theta_key = neox ? "rotary_emb_base" : "rope_theta";
  if (const auto t = json.find(theta_key); t != json.end()) rope.theta = positive_number(*t, where, theta_key);
  if (neox)
    if (const auto f = json.find("rotary_pct"); f != json.end()) rope.fraction = positive_number(*f, where, "rotary_pct");
  if (rope.fraction > 1) throw Error(where + ": the rotary fraction " + std::to_string(rope.fraction) + " is more than 1");
  return rope;
}

}  // namespace detail

/// Reads a config.json of model_type gpt_neox, llama, qwen2, qwen3 or mistral.
inline ModelConfig read_hf_family_config(const std::filesystem::path& config_json) {
  const std::string where = config_json.string();
  const nlohmann::json json = read_json_file(config_json);
  if (!json.is_object()) throw Error(where + ": expected a JSON object of model settings, got " + json.type_name());
  const std::string type = json.value("model_type", "");
  require(is_hf_family_model_type(type), where + ": model_type \"" + type + "\" is not gpt_neox, llama, qwen2, qwen3 or mistral");
  const bool neox = type == "gpt_neox";
  auto required_size = [&](const std::string& key) {
    const auto found = json.find(key);
    if (found == json.end())
      throw Error(where + ": missing key \"" + key + "\" (a " + type +
                  " config.json has num_hidden_layers, num_attention_heads, hidden_size, intermediate_size, "
                  "max_position_embeddings and vocab_size)");
    return detail::positive_size(*found, where, key);
  };
  ModelConfig c;
  c.n_layer = required_size("num_hidden_layers");
  c.n_head = required_size("num_attention_heads");
  c.n_embd = required_size("hidden_size");
  c.n_inner = required_size("intermediate_size");
  c.n_positions = required_size("max_position_embeddings");
  c.vocab_size = required_size("vocab_size");
  if (const auto dh = json.find("head_dim"); dh != json.end() && !dh->is_null()) c.head_dim = detail::positive_size(*dh, where, "head_dim");
  if (!c.head_dim && c.n_embd % c.n_head != 0)
    throw Error(where + ": hidden_size " + std::to_string(c.n_embd) + " is not divisible by num_attention_heads " +
                std::to_string(c.n_head) + " (and there is no head_dim)");
  if (!neox)
    if (const auto kv = json.find("num_key_value_heads"); kv != json.end() && !kv->is_null()) {
      c.n_kv_head = detail::positive_size(*kv, where, "num_key_value_heads");
      if (c.n_head % c.n_kv_head != 0)
        throw Error(where + ": num_attention_heads " + std::to_string(c.n_head) + " is not divisible by num_key_value_heads " +
                    std::to_string(c.n_kv_head) + " (grouped-query attention shares each key/value head among equally "
                    "many query heads)");
      if (c.n_kv_head == c.n_head) c.n_kv_head = 0;
    }
  const auto rope = detail::read_rope(json, where, neox, c.n_positions);
  c.positional = "rotary";
  c.rotary_base = rope.theta;
  c.rope_scaling = rope.scaling;
  c.rotary_dim = static_cast<std::size_t>(double(c.d_head()) * rope.fraction);  // transformers: int(head_dim * factor)
  if (c.rotary_dim == 0 || c.rotary_dim % 2 != 0)
    throw Error(where + ": the rotary fraction " + std::to_string(rope.fraction) + " of head_dim " + std::to_string(c.d_head()) +
                " gives " + std::to_string(c.rotary_dim) + " dimensions; rotary needs a positive even number");
  if (c.rotary_dim == c.d_head()) c.rotary_dim = 0;

  const std::string eps_key = neox ? "layer_norm_eps" : "rms_norm_eps";
  if (const auto eps = json.find(eps_key); eps != json.end()) c.layer_norm_epsilon = detail::positive_number(*eps, where, eps_key);
  else c.layer_norm_epsilon = neox ? 1e-5 : 1e-6;  // the config classes' defaults

  const std::string act = json.value("hidden_act", neox ? "gelu" : "silu");
  if (act != (neox ? "gelu" : "silu"))
    throw Error(where + ": \"hidden_act\" is \"" + act + "\"; circuitry runs " + type + " models with " +
                (neox ? "\"gelu\" (exact)" : "\"silu\"") + " only");
  c.act_fn = act;
  if (neox) {
    c.normalization = "LN";
    c.parallel_attn_mlp = detail::optional_bool(json, where, "use_parallel_residual", true);
    c.attn_qkv_bias = c.attn_out_bias = detail::optional_bool(json, where, "attention_bias", true);
    c.mlp_bias = true;
    c.tie_word_embeddings = detail::optional_bool(json, where, "tie_word_embeddings", false);
  } else {
    c.normalization = "RMS";
    c.gated_mlp = true;
    const bool attention_bias = detail::optional_bool(json, where, "attention_bias", false);
    c.attn_qkv_bias = type == "qwen2" || attention_bias;  // Qwen2's q/k/v projections always have biases
    c.attn_out_bias = type != "qwen2" && attention_bias;
    c.qk_norm = type == "qwen3";  // RMS norms of each head's q and k (q_norm, k_norm)
    c.mlp_bias = detail::optional_bool(json, where, "mlp_bias", false);
    c.tie_word_embeddings = detail::optional_bool(json, where, "tie_word_embeddings", false);
    // A sliding window: Mistral's on every layer; Qwen's (use_sliding_window) as transformers
    // marks the layers: layer_types, else the layers from max_window_layers on.
    const bool sliding = type == "mistral" || detail::optional_bool(json, where, "use_sliding_window", false);
    if (const auto w = json.find("sliding_window"); sliding && w != json.end() && !w->is_null()) {
      c.sliding_window = detail::positive_size(*w, where, "sliding_window");
      if (type != "mistral") {
        if (auto marked = detail::read_sliding_layer_types(json, where, c.n_layer)) {
          c.sliding_layers = std::move(*marked);
        } else {
          const auto from = json.find("max_window_layers");
          const std::size_t first = from == json.end() ? 28 : static_cast<std::size_t>(detail::positive_size(*from, where, "max_window_layers"));
          c.sliding_layers.assign(c.n_layer, false);
          for (std::size_t l = first; l < c.n_layer; ++l) c.sliding_layers[l] = true;
        }
      }
    }
  }
  for (const char* moe : {"num_local_experts", "num_experts", "moe_intermediate_size"})
    if (json.contains(moe) && !json[moe].is_null())
      throw Error(where + ": \"" + moe + "\" is set: mixture-of-experts layers are not components of circuitry");
  return c;
}

/// The tensor names of a gpt_neox or llama-family checkpoint (with or without the wrapper's
/// "gpt_neox." / "model." prefix) and how each becomes a parameter: every Linear weight is
/// transposed; q, k and v (and gate and up) fill the parts of the fused W_QKV (W_gate_in);
/// GPT-NeoX's query_key_value is regrouped from per-head rows. Rotary inv_freq and the
/// attention-mask buffers are ignored, and so is an lm_head copy of a tied embedding.
inline TensorTable hf_family_tensor_table(const ModelConfig& c, bool neox) {
  using enum TensorLayout;
  TensorTable t;
  std::string head;
  if (neox) {
    t.roots = {"gpt_neox."};
    head = "embed_out.weight";
    t.rules = {
        {"embed_in.weight", "embed.W_E"},
        {"layers.{l}.input_layernorm.weight", "blocks.{l}.ln1.w"},
        {"layers.{l}.input_layernorm.bias", "blocks.{l}.ln1.b"},
        {"layers.{l}.attention.query_key_value.weight", "blocks.{l}.attn.W_QKV", neox_qkv},
        {"layers.{l}.attention.query_key_value.bias", "blocks.{l}.attn.b_QKV", neox_qkv},
        {"layers.{l}.attention.dense.weight", "blocks.{l}.attn.W_O", transposed},
        {"layers.{l}.attention.dense.bias", "blocks.{l}.attn.b_O"},
        {"layers.{l}.post_attention_layernorm.weight", "blocks.{l}.ln2.w"},
        {"layers.{l}.post_attention_layernorm.bias", "blocks.{l}.ln2.b"},
        {"layers.{l}.mlp.dense_h_to_4h.weight", "blocks.{l}.mlp.W_in", transposed},
        {"layers.{l}.mlp.dense_h_to_4h.bias", "blocks.{l}.mlp.b_in"},
        {"layers.{l}.mlp.dense_4h_to_h.weight", "blocks.{l}.mlp.W_out", transposed},
        {"layers.{l}.mlp.dense_4h_to_h.bias", "blocks.{l}.mlp.b_out"},
        {"final_layer_norm.weight", "ln_final.w"},
        {"final_layer_norm.bias", "ln_final.b"},
        {head, "unembed.W_U"},
    };
  } else {
    t.roots = {"model."};
    head = "lm_head.weight";
    t.rules = {
        {"embed_tokens.weight", "embed.W_E"},
        {"layers.{l}.input_layernorm.weight", "blocks.{l}.ln1.w"},
        {"layers.{l}.self_attn.q_proj.weight", "blocks.{l}.attn.W_QKV", transposed, 0},
        {"layers.{l}.self_attn.k_proj.weight", "blocks.{l}.attn.W_QKV", transposed, 1},
        {"layers.{l}.self_attn.v_proj.weight", "blocks.{l}.attn.W_QKV", transposed, 2},
        {"layers.{l}.self_attn.q_proj.bias", "blocks.{l}.attn.b_QKV", same, 0},
        {"layers.{l}.self_attn.k_proj.bias", "blocks.{l}.attn.b_QKV", same, 1},
        {"layers.{l}.self_attn.v_proj.bias", "blocks.{l}.attn.b_QKV", same, 2},
        {"layers.{l}.self_attn.q_norm.weight", "blocks.{l}.attn.q_norm.w"},
        {"layers.{l}.self_attn.k_norm.weight", "blocks.{l}.attn.k_norm.w"},
        {"layers.{l}.self_attn.o_proj.weight", "blocks.{l}.attn.W_O", transposed},
        {"layers.{l}.self_attn.o_proj.bias", "blocks.{l}.attn.b_O"},
        {"layers.{l}.post_attention_layernorm.weight", "blocks.{l}.ln2.w"},
        {"layers.{l}.mlp.gate_proj.weight", "blocks.{l}.mlp.W_gate_in", transposed, 0},
        {"layers.{l}.mlp.up_proj.weight", "blocks.{l}.mlp.W_gate_in", transposed, 1},
        {"layers.{l}.mlp.gate_proj.bias", "blocks.{l}.mlp.b_gate_in", same, 0},
        {"layers.{l}.mlp.up_proj.bias", "blocks.{l}.mlp.b_gate_in", same, 1},
        {"layers.{l}.mlp.down_proj.weight", "blocks.{l}.mlp.W_out", transposed},
        {"layers.{l}.mlp.down_proj.bias", "blocks.{l}.mlp.b_out"},
        {"norm.weight", "ln_final.w"},
        {head, "unembed.W_U"},
    };
  }
  const bool tied = c.tie_word_embeddings;
  t.ignored = [tied, head](const std::string& name) {
    return name.ends_with(".inv_freq") || name.ends_with(".attention.bias") || name.ends_with(".attention.masked_bias") ||
           (tied && name == head);
  };
  return t;
}


/// Loads a gpt_neox, llama, qwen2, qwen3 or mistral directory: config.json and model.safetensors, or
/// model.safetensors.index.json and its shards (io/tensor_store.hpp: tensors are read through a
/// memory map straight into circuitry's storage, so loading holds one copy of the weights).
template <class T>
Checkpoint<T> load_hf_family(const std::filesystem::path& dir) {
  Checkpoint<T> checkpoint;
  checkpoint.config = read_hf_family_config(dir / "config.json");
  const bool neox = read_json_file(dir / "config.json").value("model_type", "") == "gpt_neox";
  const TensorStore store = TensorStore::open(dir);
  const ModelConfig& c = checkpoint.config;
  // A config.json claiming more layers than the files hold is refused before anything is allocated per layer.
  const std::string root = neox ? "gpt_neox." : "model.";
  const std::string last_layer = "layers." + std::to_string(c.n_layer - 1) + ".input_layernorm.weight";
  if (!store.contains(root + last_layer) && !store.contains(last_layer))
    throw Error(store.path().string() + ": missing tensor '" + root + last_layer + "': config.json says num_hidden_layers = " +
                std::to_string(c.n_layer) + " but the checkpoint holds " + std::to_string(store.size()) +
                " tensors; does config.json belong to this model?");
  checkpoint.weights =
      load_parameters<T>(store, store.path().string(), declared_parameters(c), hf_family_tensor_table(c, neox), c);
  return checkpoint;
}

}  // namespace circuitry::io
