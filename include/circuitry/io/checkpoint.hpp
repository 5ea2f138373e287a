#pragma once
// Hugging Face GPT-2 model directories (DESIGN.md section 3): config.json + model.safetensors
// (or its shards, see tensor_store.hpp), tensor names as GPT2LMHeadModel / GPT2Model write them,
// with or without "transformer.".
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <span>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuitry/core/error.hpp"
#include "circuitry/io/atomic_file.hpp"
#include "circuitry/io/json_parse.hpp"
#include "circuitry/io/safetensors.hpp"
#include "circuitry/io/parameter_table.hpp"
#include "circuitry/io/tensor_store.hpp"
#include "circuitry/models/config.hpp"
#include "circuitry/models/weights.hpp"

namespace circuitry::io {

namespace detail {

/// A size key of config.json: a positive integer, bounded so that products of sizes cannot
/// overflow and token ids fit in int.
inline std::size_t positive_size(const nlohmann::json& value, const std::string& where, const std::string& key) {
  constexpr std::uint64_t limit = (1u << 31) - 1;
  if (!value.is_number_integer())
    throw Error(where + ": \"" + key + "\" must be a positive integer, got " + value.dump());
  if (!value.is_number_unsigned() || value.get<std::uint64_t>() == 0)
    throw Error(where + ": \"" + key + "\" must be positive, got " + value.dump());
  if (value.get<std::uint64_t>() > limit)
    throw Error(where + ": \"" + key + "\" is " + value.dump() + ", more than the supported " + std::to_string(limit));
  return value.get<std::size_t>();
}

inline bool optional_bool(const nlohmann::json& config, const std::string& where, const std::string& key,
                          bool fallback) {
  const auto found = config.find(key);
  if (found == config.end()) return fallback;
  if (!found->is_boolean()) throw Error(where + ": \"" + key + "\" must be true or false, got " + found->dump());
  return found->get<bool>();
}

/// Settings that change the computation in ways circuitry does not implement: refused when
/// present with another value, rather than giving silently wrong numbers.
inline void require_setting(const nlohmann::json& config, const std::string& where, const std::string& key,
                            const nlohmann::json& supported) {
  const auto found = config.find(key);
  if (found != config.end() && *found != supported)
    throw Error(where + ": \"" + key + "\" is " + found->dump() + "; circuitry implements GPT-2 with " +
                supported.dump() + " only");
}

inline std::string describe(const ModelConfig& config) {
  return "n_layer = " + std::to_string(config.n_layer) + ", attn_only = " + (config.attn_only ? "true" : "false") +
         ", tie_word_embeddings = " + (config.tie_word_embeddings ? "true" : "false");
}

}  // namespace detail

/// Hugging Face GPT-2 tensor names (GPT2LMHeadModel / GPT2Model, with or without "transformer.").
/// Conv1D stores y = x W + b as circuitry does, and c_attn is already q | k | v: every tensor is
/// kept as it is. The causal-mask buffers, and the lm_head copy of wte that some tied checkpoints
/// keep, are ignored.
inline TensorTable gpt2_tensor_table(const ModelConfig& config) {
  TensorTable t;
  t.roots = {"transformer."};
  t.rules = {
      {"wte.weight", "embed.W_E"},
      {"wpe.weight", "pos_embed.W_pos"},
      {"h.{l}.ln_1.weight", "blocks.{l}.ln1.w"},
      {"h.{l}.ln_1.bias", "blocks.{l}.ln1.b"},
      {"h.{l}.attn.c_attn.weight", "blocks.{l}.attn.W_QKV"},
      {"h.{l}.attn.c_attn.bias", "blocks.{l}.attn.b_QKV"},
      {"h.{l}.attn.c_proj.weight", "blocks.{l}.attn.W_O"},
      {"h.{l}.attn.c_proj.bias", "blocks.{l}.attn.b_O"},
      {"h.{l}.ln_2.weight", "blocks.{l}.ln2.w"},
      {"h.{l}.ln_2.bias", "blocks.{l}.ln2.b"},
      {"h.{l}.mlp.c_fc.weight", "blocks.{l}.mlp.W_in"},
      {"h.{l}.mlp.c_fc.bias", "blocks.{l}.mlp.b_in"},
      {"h.{l}.mlp.c_proj.weight", "blocks.{l}.mlp.W_out"},
      {"h.{l}.mlp.c_proj.bias", "blocks.{l}.mlp.b_out"},
      {"ln_f.weight", "ln_final.w"},
      {"ln_f.bias", "ln_final.b"},
      {"lm_head.weight", "unembed.W_U"},
  };
  const bool tied = config.tie_word_embeddings;
  t.ignored = [tied](const std::string& name) {
    return name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") || (tied && name == "lm_head.weight");
  };
  t.config_words = "config.json (" + detail::describe(config) + ")";
  return t;
}

/// Reads a GPT-2 config.json. Required: n_layer, n_head, n_embd, n_positions, vocab_size
/// (positive integers). Optional: n_inner (null or absent: 4 n_embd), layer_norm_epsilon (1e-5),
/// attn_only (false), tie_word_embeddings (true). n_embd must split evenly into n_head heads.
inline ModelConfig read_model_config(const std::filesystem::path& config_json) {
  const std::string where = config_json.string();
  const nlohmann::json json = read_json_file(config_json);
  if (!json.is_object()) throw Error(where + ": expected a JSON object of model settings, got " + json.type_name());

  auto required_size = [&](const std::string& key) {
    const auto found = json.find(key);
    if (found == json.end())
      throw Error(where + ": missing key \"" + key +
                  "\" (a GPT-2 config.json has n_layer, n_head, n_embd, n_positions and vocab_size)");
    return detail::positive_size(*found, where, key);
  };
  ModelConfig config;
  config.n_layer = required_size("n_layer");
  config.n_head = required_size("n_head");
  config.n_embd = required_size("n_embd");
  config.n_positions = required_size("n_positions");
  config.vocab_size = required_size("vocab_size");
  const auto n_inner = json.find("n_inner");
  config.n_inner = (n_inner == json.end() || n_inner->is_null()) ? 4 * config.n_embd
                                                                 : detail::positive_size(*n_inner, where, "n_inner");
  if (const auto eps = json.find("layer_norm_epsilon"); eps != json.end()) {
    if (!eps->is_number() || !(eps->get<double>() > 0) || !std::isfinite(eps->get<double>()))
      throw Error(where + ": \"layer_norm_epsilon\" must be a positive number, got " + eps->dump());
    config.layer_norm_epsilon = eps->get<double>();
  }
  config.attn_only = detail::optional_bool(json, where, "attn_only", false);
  config.tie_word_embeddings = detail::optional_bool(json, where, "tie_word_embeddings", true);
  if (config.n_embd % config.n_head != 0)
    throw Error(where + ": n_embd " + std::to_string(config.n_embd) + " is not divisible by n_head " +
                std::to_string(config.n_head) + " (each head gets n_embd / n_head dimensions)");

  detail::require_setting(json, where, "model_type", "gpt2");
  if (!config.attn_only) detail::require_setting(json, where, "activation_function", "gelu_new");
  detail::require_setting(json, where, "scale_attn_weights", true);
  detail::require_setting(json, where, "scale_attn_by_inverse_layer_idx", false);
  return config;
}

/// Writes the config.json that read_model_config reads back (and Hugging Face's GPT2Config
/// accepts: model_type "gpt2"; attn_only is our extension).
inline void write_model_config(const std::filesystem::path& config_json, const ModelConfig& config) {
  const nlohmann::ordered_json json = {
      {"model_type", "gpt2"},
      {"n_layer", config.n_layer},
      {"n_head", config.n_head},
      {"n_embd", config.n_embd},
      {"n_positions", config.n_positions},
      {"vocab_size", config.vocab_size},
      {"n_inner", config.n_inner},
      {"layer_norm_epsilon", config.layer_norm_epsilon},
      {"activation_function", "gelu_new"},
      {"attn_only", config.attn_only},
      {"tie_word_embeddings", config.tie_word_embeddings},
  };
  write_file_atomically(config_json, json.dump(2) + '\n');
}

/// Reads the tensors of dir (model.safetensors, or shards listed by model.safetensors.index.json)
/// into Weights<T>. Every parameter the config implies must be present with exactly the implied
/// shape, and every tensor stored must be used (except the ignored buffers), so a config.json
/// from another model cannot load silently.
template <class T>
Weights<T> load_weights(const std::filesystem::path& dir, const ModelConfig& config) {
  const TensorStore store = TensorStore::open(dir);
  const std::string where = store.path().string();

  // Every layer has at least its six attention tensors: a config.json claiming more layers than
  // the file holds tensors for is refused before anything is allocated for them.
  if (store.size() / 6 < config.n_layer)
    throw Error(where + ": config.json says n_layer = " + std::to_string(config.n_layer) +
                ", but the file holds only " + std::to_string(store.size()) +
                " tensors (each layer has at least 6); does config.json belong to this model?");
  const std::string last_layer = "h." + std::to_string(config.n_layer - 1) + ".ln_1.weight";
  if (!store.contains(last_layer) && !store.contains("transformer." + last_layer))
    throw Error(where + ": missing tensor '" + last_layer + "': config.json says n_layer = " + std::to_string(config.n_layer) +
                " but the file holds " + std::to_string(store.size()) + " tensors; does config.json belong to this model?");

  return load_parameters<T>(store, where, declared_parameters(config), gpt2_tensor_table(config), config);
}

template <class T>
struct Checkpoint {
  ModelConfig config;
  Weights<T> weights;
};

/// Loads a Hugging Face GPT-2 directory: dir/config.json and dir/model.safetensors (or shards).
template <class T>
Checkpoint<T> load_checkpoint(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw Error(dir.string() +
                ": not a directory (expected a GPT-2 model directory with config.json and model.safetensors)");
  Checkpoint<T> checkpoint;
  checkpoint.config = read_model_config(dir / "config.json");
  checkpoint.weights = load_weights<T>(dir, checkpoint.config);
  return checkpoint;
}

/// Writes dir/config.json and dir/model.safetensors (F32, names without prefix, metadata
/// {"format": "pt"} as transformers expects), creating dir if needed. The weights must have the
/// shapes the config implies.
template <class T>
void save_checkpoint(const std::filesystem::path& dir, const ModelConfig& config, const Weights<T>& weights) {
  const std::string where = dir.string() + ": cannot save the checkpoint: ";
  require(config.normalization == "LN" && config.attention_dir == "causal" && config.positional == "standard" &&
              (config.attn_only || config.act_fn == "gelu_new") && config.d_head() * config.n_head == config.n_embd &&
              !config.unembed_bias && config.n_outputs() == config.vocab_size,
          where + "the Hugging Face GPT-2 layout holds GPT-2 and attention-only models only (layer norms, causal "
                  "attention, gelu_new, d_head = n_embd / n_head, no unembedding bias)");
  const std::vector<NamedTensor> tensors =
      parameters_to_tensors(weights, declared_parameters(config), gpt2_tensor_table(config), config.n_layer, where);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(dir.string() + ": cannot create the directory (" + ec.message() + ")");
  write_model_config(dir / "config.json", config);
  write_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
}

}  // namespace circuitry::io
