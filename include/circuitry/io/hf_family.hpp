#pragma once
// Hugging Face directories of the model families researchers use today, by config.json's
// model_type (DESIGN.md section 3):
//   gpt_neox (Pythia)        LayerNorms, rotary on rotary_pct of each head, parallel residual
//                            (use_parallel_residual), exact GELU, untied embed_out
//   llama, qwen2, mistral    RMSNorms, rotary on all of each head, SwiGLU MLP, grouped-query
//                            attention (num_key_value_heads); Qwen2 adds q/k/v biases
// Every Linear weight is PyTorch's [out, in] (y = x W^T + b); circuitry stores y = x W + b, so
// the loader transposes. q, k and v are fused into circuitry's W_QKV [D, (H + 2 KV) d_head]:
// Llama's q_proj, k_proj, v_proj side by side; GPT-NeoX's query_key_value, whose rows are
// grouped per head (head h's q, k, v are rows h*3*dh + [0, dh), [dh, 2dh), [2dh, 3dh)), regrouped
// into q | k | v blocks. gate_proj | up_proj become one [D, 2 d_mlp] (models/components/mlp.hpp).
// Both transformers 5's config keys (rope_parameters, dtype) and 4.x's (rope_theta, rope_scaling,
// rotary_pct, rotary_emb_base, torch_dtype) are read. A setting circuitry does not implement
// (rope scaling, a sliding window shorter than the context, MoE, another activation) is one
// error naming the key.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuitry/core/transpose.hpp"
#include "circuitry/io/checkpoint.hpp"
#include "circuitry/io/tensor_store.hpp"

namespace circuitry::io {

/// The model_type values this file reads.
inline bool is_hf_family_model_type(const std::string& type) {
  return type == "gpt_neox" || type == "llama" || type == "qwen2" || type == "mistral";
}

namespace detail {

/// The rotary settings in either spelling: transformers 5's rope_parameters {rope_type,
/// rope_theta, partial_rotary_factor}, or 4.x's rope_theta + rope_scaling (Llama family) and
/// rotary_emb_base + rotary_pct (GPT-NeoX). Only rope_type "default" (no scaling) is implemented.
struct RopeSettings {
  double theta = 10000.0;
  double fraction = 1.0;  // of each head's dimensions
};

inline double positive_number(const nlohmann::json& value, const std::string& where, const std::string& key) {
  if (!value.is_number() || !(value.get<double>() > 0) || !std::isfinite(value.get<double>()))
    throw Error(where + ": \"" + key + "\" must be a positive number, got " + value.dump());
  return value.get<double>();
}

inline RopeSettings read_rope(const nlohmann::json& json, const std::string& where, bool neox) {
  RopeSettings rope;
  auto refuse_scaling = [&](const nlohmann::json& params, const std::string& key) {
    const auto type = params.find("rope_type") != params.end() ? params.find("rope_type") : params.find("type");
    if (type != params.end() && *type != "default")
      throw Error(where + ": \"" + key + "\" asks for rope_type " + type->dump() +
                  "; circuitry implements rotary positions without scaling (rope_type \"default\") only");
  };
  if (const auto p = json.find("rope_parameters"); p != json.end() && !p->is_null()) {
    if (!p->is_object()) throw Error(where + ": \"rope_parameters\" must be an object, got " + p->dump());
    refuse_scaling(*p, "rope_parameters");
    if (const auto t = p->find("rope_theta"); t != p->end()) rope.theta = positive_number(*t, where, "rope_parameters.rope_theta");
    if (const auto f = p->find("partial_rotary_factor"); f != p->end())
      rope.fraction = positive_number(*f, where, "rope_parameters.partial_rotary_factor");
  }
  if (const auto s = json.find("rope_scaling"); s != json.end() && !s->is_null()) {
    if (!s->is_object()) throw Error(where + ": \"rope_scaling\" must be null or an object, got " + s->dump());
    refuse_scaling(*s, "rope_scaling");
  }
  const char* theta_key = neox ? "rotary_emb_base" : "rope_theta";
  if (const auto t = json.find(theta_key); t != json.end()) rope.theta = positive_number(*t, where, theta_key);
  if (neox)
    if (const auto f = json.find("rotary_pct"); f != json.end()) rope.fraction = positive_number(*f, where, "rotary_pct");
  if (rope.fraction > 1) throw Error(where + ": the rotary fraction " + std::to_string(rope.fraction) + " is more than 1");
  return rope;
}

}  // namespace detail

/// Reads a config.json of model_type gpt_neox, llama, qwen2 or mistral.
inline ModelConfig read_hf_family_config(const std::filesystem::path& config_json) {
  const std::string where = config_json.string();
  const nlohmann::json json = read_json_file(config_json);
  if (!json.is_object()) throw Error(where + ": expected a JSON object of model settings, got " + json.type_name());
  const std::string type = json.value("model_type", "");
  require(is_hf_family_model_type(type), where + ": model_type \"" + type + "\" is not gpt_neox, llama, qwen2 or mistral");
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
  const auto rope = detail::read_rope(json, where, neox);
  c.positional = "rotary";
  c.rotary_base = rope.theta;
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
    c.mlp_bias = detail::optional_bool(json, where, "mlp_bias", false);
    c.tie_word_embeddings = detail::optional_bool(json, where, "tie_word_embeddings", false);
    // A sliding window shorter than the context changes which keys a query sees.
    const bool sliding = type == "mistral" || detail::optional_bool(json, where, "use_sliding_window", false);
    if (const auto w = json.find("sliding_window"); sliding && w != json.end() && !w->is_null()) {
      const std::size_t window = detail::positive_size(*w, where, "sliding_window");
      if (window < c.n_positions)
        throw Error(where + ": \"sliding_window\" is " + std::to_string(window) + ", shorter than the context (" +
                    std::to_string(c.n_positions) + "); circuitry implements full causal attention only");
    }
  }
  for (const char* moe : {"num_local_experts", "num_experts", "moe_intermediate_size"})
    if (json.contains(moe) && !json[moe].is_null())
      throw Error(where + ": \"" + moe + "\" is set: mixture-of-experts layers are not components of circuitry");
  return c;
}

namespace detail {

/// Reads the tensors of a gpt_neox / llama-family checkpoint out of `file` (a TensorStore) into
/// circuitry's layout. Every tensor the config implies must be there with its shape, and every tensor in
/// the file must be used (rotary inv_freq and mask buffers aside).
template <class T, class Store>
Weights<T> hf_family_weights(const Store& file, const std::string& where, const ModelConfig& c, bool neox) {
  const std::size_t D = c.n_embd, H = c.n_head, KV = c.kv_heads(), dh = c.d_head(), A = c.d_attn(), N = c.qkv_width();
  const std::size_t F = c.n_inner, V = c.vocab_size;
  const std::string root = neox ? "gpt_neox." : "model.";
  std::set<std::string> used;
  auto stored_name = [&](const std::string& name) {
    if (file.contains(root + name)) return root + name;
    return name;  // a base model saved without its wrapper's prefix
  };
  // Reads tensor `name` (checked against `shape`) into out, which has shape's element count.
  auto read_into = [&](const std::string& name, const std::vector<std::size_t>& shape, std::span<T> out, bool under_root) {
    const std::string stored = under_root ? stored_name(name) : name;
    if (!file.contains(stored))
      throw Error(where + ": missing tensor '" + (under_root ? root : "") + name + "', which config.json requires");
    const auto& info = file.info(stored);
    const std::string holder = file.file_of(stored);
    if (info.shape != shape)
      throw Error(holder + ": tensor '" + stored + "' has shape " + format_shape(info.shape) + " but config.json implies " +
                  format_shape(shape));
    file.template read_into<T>(stored, out);
    for (std::size_t i = 0; i < out.size(); ++i)
      if (!std::isfinite(out[i]))
        throw Error(holder + ": tensor '" + stored + "' holds a non-finite value (" + std::to_string(double(out[i])) +
                    ") at flat index " + std::to_string(i));
    used.insert(stored);
  };
  // A tensor that is rearranged on the way in: read into a temporary (one tensor at a time).
  auto read = [&](const std::string& name, const std::vector<std::size_t>& shape) {
    std::size_t n = 1;
    for (std::size_t e : shape) n *= e;
    std::vector<T> values(n);
    read_into(name, shape, std::span<T>(values), true);
    return values;
  };
  // Tensors kept as stored are read straight into their storage (no second copy of the embedding).
  auto copy1 = [&](ParamTensor<T, 1>& t, const std::string& name, std::size_t n) {
    t.resize({n});
    read_into(name, {n}, std::span<T>(t.data(), t.size()), true);
  };
  auto copy2 = [&](ParamTensor<T, 2>& t, const std::string& name, std::size_t rows, std::size_t cols, bool under_root = true) {
    t.resize({rows, cols});
    read_into(name, {rows, cols}, std::span<T>(t.data(), t.size()), under_root);
  };
  // A Linear weight [out, in] into columns col0.. of a [in, width] matrix: dst(i, col0 + o) = W[o, i].
  auto transpose_into = [](ParamTensor<T, 2>& dst, const std::vector<T>& W, std::size_t out, std::size_t in, std::size_t col0) {
    transpose(W.data(), out, in, in, &dst(0, col0), dst.shape()[1]);
  };

  // A config.json claiming more layers than the files hold is refused before anything is allocated per layer.
  const std::string last_layer = "layers." + std::to_string(c.n_layer - 1) + ".input_layernorm.weight";
  if (!file.contains(stored_name(last_layer)))
    throw Error(where + ": missing tensor '" + root + last_layer + "': config.json says num_hidden_layers = " +
                std::to_string(c.n_layer) + " but the checkpoint holds " + std::to_string(file.size()) +
                " tensors; does config.json belong to this model?");
  Weights<T> w;
  copy2(w.wte, neox ? "embed_in.weight" : "embed_tokens.weight", V, D);
  w.layers.resize(c.n_layer);
  for (std::size_t l = 0; l < c.n_layer; ++l) {
    auto& x = w.layers[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    copy1(x.ln1_w, p + "input_layernorm.weight", D);
    copy1(x.ln2_w, p + "post_attention_layernorm.weight", D);
    if (neox) copy1(x.ln1_b, p + "input_layernorm.bias", D), copy1(x.ln2_b, p + "post_attention_layernorm.bias", D);
    x.w_qkv.resize({D, N});
    if (c.attn_qkv_bias) x.b_qkv.resize({N});
    if (neox) {  // rows grouped per head: [H, (q | k | v), dh]  ->  columns q | k | v, head-major in each
      const auto W = read(p + "attention.query_key_value.weight", {3 * A, D});
      const auto b = c.attn_qkv_bias ? read(p + "attention.query_key_value.bias", {3 * A}) : std::vector<T>{};
      for (std::size_t h = 0; h < H; ++h)
        for (std::size_t j = 0; j < 3; ++j) {
          const std::size_t row = (h * 3 + j) * dh, col = j * A + h * dh;  // a [dh, D] block -> [D, dh] columns
          transpose(W.data() + row * D, dh, D, D, &x.w_qkv(0, col), N);
          if (c.attn_qkv_bias) std::copy_n(b.begin() + static_cast<std::ptrdiff_t>(row), dh, x.b_qkv.begin() + static_cast<std::ptrdiff_t>(col));
        }
    } else {  // q_proj [H dh, D] | k_proj [KV dh, D] | v_proj [KV dh, D]
      const std::size_t widths[3] = {H * dh, KV * dh, KV * dh}, starts[3] = {0, H * dh, (H + KV) * dh};
      for (std::size_t j = 0; j < 3; ++j) {
        const std::string proj = p + "self_attn." + "qkv"[j] + "_proj.";
        transpose_into(x.w_qkv, read(proj + "weight", {widths[j], D}), widths[j], D, starts[j]);
        if (c.attn_qkv_bias) {
          const auto b = read(proj + "bias", {widths[j]});
          std::copy(b.begin(), b.end(), x.b_qkv.begin() + static_cast<std::ptrdiff_t>(starts[j]));
        }
      }
    }
    const std::string out = neox ? p + "attention.dense." : p + "self_attn.o_proj.";
    x.w_o.resize({A, D});
    transpose_into(x.w_o, read(out + "weight", {D, A}), D, A, 0);
    if (c.attn_out_bias) copy1(x.b_o, out + "bias", D);
    if (neox) {
      x.w_fc.resize({D, F});
      transpose_into(x.w_fc, read(p + "mlp.dense_h_to_4h.weight", {F, D}), F, D, 0);
      copy1(x.b_fc, p + "mlp.dense_h_to_4h.bias", F);
      x.w_proj.resize({F, D});
      transpose_into(x.w_proj, read(p + "mlp.dense_4h_to_h.weight", {D, F}), D, F, 0);
      copy1(x.b_proj, p + "mlp.dense_4h_to_h.bias", D);
    } else {  // gate | up fused into [D, 2F]
      x.w_fc.resize({D, 2 * F});
      transpose_into(x.w_fc, read(p + "mlp.gate_proj.weight", {F, D}), F, D, 0);
      transpose_into(x.w_fc, read(p + "mlp.up_proj.weight", {F, D}), F, D, F);
      x.w_proj.resize({F, D});
      transpose_into(x.w_proj, read(p + "mlp.down_proj.weight", {D, F}), D, F, 0);
      if (c.mlp_bias) {
        x.b_fc.resize({2 * F});
        const auto gate = read(p + "mlp.gate_proj.bias", {F}), up = read(p + "mlp.up_proj.bias", {F});
        std::copy(gate.begin(), gate.end(), x.b_fc.begin());
        std::copy(up.begin(), up.end(), x.b_fc.begin() + static_cast<std::ptrdiff_t>(F));
        copy1(x.b_proj, p + "mlp.down_proj.bias", D);
      }
    }
  }
  copy1(w.lnf_w, neox ? "final_layer_norm.weight" : "norm.weight", D);
  if (neox) copy1(w.lnf_b, "final_layer_norm.bias", D);
  const std::string head = neox ? "embed_out.weight" : "lm_head.weight";
  if (!c.tie_word_embeddings) copy2(w.lm_head, head, V, D, /*under_root=*/false);

  for (const std::string& name : file.names()) {
    const bool buffer = name.ends_with(".inv_freq") || name.ends_with(".attention.bias") ||
                        name.ends_with(".attention.masked_bias") || (c.tie_word_embeddings && name == head);
    if (!used.contains(name) && !buffer)
      throw Error(file.file_of(name) + ": unexpected tensor '" + name +
                  "' that config.json has no place for; does config.json belong to this model?");
  }
  return w;
}

}  // namespace detail

/// Loads a gpt_neox, llama, qwen2 or mistral directory: config.json and model.safetensors, or
/// model.safetensors.index.json and its shards (io/tensor_store.hpp: tensors are read through a
/// memory map straight into circuitry's storage, so loading holds one copy of the weights).
template <class T>
Checkpoint<T> load_hf_family(const std::filesystem::path& dir) {
  Checkpoint<T> checkpoint;
  checkpoint.config = read_hf_family_config(dir / "config.json");
  const bool neox = read_json_file(dir / "config.json").value("model_type", "") == "gpt_neox";
  const TensorStore store = TensorStore::open(dir);
  checkpoint.weights = detail::hf_family_weights<T>(store, store.path().string(), checkpoint.config, neox);
  return checkpoint;
}

}  // namespace circuitry::io
