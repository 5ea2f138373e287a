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
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuitry/core/transpose.hpp"
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

  // Reads tensor `name`, which must have `shape`, into `out` and checks that every value is finite.
  std::set<std::string> used;
  auto read_into = [&](const std::string& name, const std::vector<std::size_t>& shape, std::span<T> out) {
    if (!store.contains(name)) throw Error(where + ": missing tensor '" + name + "', which config.json requires");
    const TensorInfo& info = store.info(name);
    if (info.shape != shape)
      throw Error(store.file_of(name) + ": tensor '" + name + "' has shape " + detail::format_shape(info.shape) +
                  " but config.json implies " + detail::format_shape(shape));
    store.read_into(name, out);
    for (std::size_t i = 0; i < out.size(); ++i)
      if (!std::isfinite(out[i]))
        throw Error(store.file_of(name) + ": tensor '" + name + "' holds a non-finite value (" +
                    std::to_string(double(out[i])) + ") at flat index " + std::to_string(i));
    used.insert(name);
  };
  // The same, into a new vector: for the tensors that are rearranged on the way in.
  auto read = [&](const std::string& name, const std::vector<std::size_t>& shape) {
    std::size_t count = 1;
    for (std::size_t extent : shape) count *= extent;
    std::vector<T> values(count);
    read_into(name, shape, std::span<T>(values));
    return values;
  };
  auto tensor1 = [&](ParamTensor<T, 1>& t, const std::string& name, std::size_t n) {
    t.resize({n});
    read_into(name, {n}, std::span<T>(t.data(), t.size()));
  };
  auto tensor2 = [&](ParamTensor<T, 2>& t, const std::string& name, std::size_t rows, std::size_t cols) {
    t.resize({rows, cols});
    read_into(name, {rows, cols}, std::span<T>(t.data(), t.size()));
  };
  auto fill = [](ParamTensor<T, 1>& t, std::size_t n, T value) {
    t.resize({n});
    std::fill(t.begin(), t.end(), value);
  };
  const std::size_t D = c.n_embd, H = c.n_head, dh = c.d_head(), A = c.d_attn(), F = c.n_inner, V = c.n_outputs();
  auto norm = [&](ParamTensor<T, 1>& w, ParamTensor<T, 1>& b, const std::string& prefix) {
    if (c.normalization == "none") return;
    if (layer_norm_weights) tensor1(w, prefix + ".w", D), tensor1(b, prefix + ".b", D);
    else fill(w, D, T(1)), fill(b, D, T(0));  // LNPre
  };

  Weights<T> w;
  tensor2(w.wte, "embed.W_E", c.vocab_size, D);
  tensor2(w.wpe, "pos_embed.W_pos", c.n_positions, D);
  w.layers.resize(c.n_layer);
  for (std::size_t l = 0; l < c.n_layer; ++l) {
    auto& x = w.layers[l];
    const std::string p = "blocks." + std::to_string(l) + ".";
    norm(x.ln1_w, x.ln1_b, p + "ln1");
    x.w_qkv.resize({D, 3 * A});
    x.b_qkv.resize({3 * A});
    for (std::size_t j = 0; j < 3; ++j) {
      const std::string qkv(1, "QKV"[j]);
      const std::vector<T> W = read(p + "attn.W_" + qkv, {H, D, dh});  // [H, D, dh]
      const std::vector<T> b = read(p + "attn.b_" + qkv, {H, dh});     // [H, dh]
      for (std::size_t h = 0; h < H; ++h) {  // head h's [D, dh] block, row by row, into its dh columns
        const std::size_t col = j * A + h * dh;
        std::copy_n(b.begin() + static_cast<std::ptrdiff_t>(h * dh), dh, x.b_qkv.begin() + static_cast<std::ptrdiff_t>(col));
        for (std::size_t d = 0; d < D; ++d)
          std::copy_n(W.begin() + static_cast<std::ptrdiff_t>((h * D + d) * dh), dh, &x.w_qkv(d, col));
      }
    }
    x.w_o.resize({A, D});
    read_into(p + "attn.W_O", {H, dh, D}, std::span<T>(x.w_o.data(), x.w_o.size()));  // [H, dh, D] is [H dh, D] row-major
    tensor1(x.b_o, p + "attn.b_O", D);
    if (c.attn_only) continue;
    norm(x.ln2_w, x.ln2_b, p + "ln2");
    tensor2(x.w_fc, p + "mlp.W_in", D, F);
    tensor1(x.b_fc, p + "mlp.b_in", F);
    tensor2(x.w_proj, p + "mlp.W_out", F, D);
    tensor1(x.b_proj, p + "mlp.b_out", D);
  }
  norm(w.lnf_w, w.lnf_b, "ln_final");
  {
    const std::vector<T> W = read("unembed.W_U", {D, V});  // [D, V] -> lm_head [V, D]
    w.lm_head.resize({V, D});
    transpose(W.data(), D, V, V, w.lm_head.data(), D);
  }
  if (c.unembed_bias) tensor1(w.b_unembed, "unembed.b_U", V);

  for (const std::string& name : store.names()) {
    const bool buffer = name.ends_with(".attn.mask") || name.ends_with(".attn.IGNORE");
    if (!used.contains(name) && !buffer)
      throw Error(store.file_of(name) + ": unexpected tensor '" + name + "' that config.json has no place for (normalization_type,"
                  " attn_only and the sizes decide which tensors a model has); does config.json belong to this model?");
  }
  return w;
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
