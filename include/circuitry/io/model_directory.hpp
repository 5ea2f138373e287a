#pragma once
// One entry point for every model circuitry reads: a GGUF file (a regular file named *.gguf or
// starting with the magic "GGUF", io/gguf_model.hpp), or a directory, told apart by config.json:
//   TransformerLens checkpoint   HookedTransformerConfig fields (n_layers, d_model), no model_type
//   Hugging Face                 model_type gpt2 (or GPT-2's keys without model_type), gpt_neox,
//                                llama, qwen2, qwen3, mistral, gemma2, gemma3_text
#include <filesystem>
#include <string>

#include "circuitry/io/checkpoint.hpp"
#include "circuitry/io/gguf_model.hpp"
#include "circuitry/io/hf_family.hpp"
#include "circuitry/io/hf_gemma.hpp"
#include "circuitry/io/transformer_lens.hpp"

namespace circuitry::io {

template <class T>
Checkpoint<T> load_model_directory(const std::filesystem::path& dir) {
  if (is_gguf_file(dir)) return load_gguf<T>(dir);
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw Error(dir.string() + ": not a directory (expected a model directory with config.json and model.safetensors, or a .gguf file)");
  const std::filesystem::path config_json = dir / "config.json";
  const nlohmann::json json = read_json_file(config_json);
  if (is_transformer_lens_config(json)) return load_transformer_lens<T>(dir);
  if (json.is_object() && json.contains("model_type")) {
    const auto& type = json["model_type"];
    if (!type.is_string()) throw Error(config_json.string() + ": \"model_type\" must be a string, got " + type.dump());
    if (is_hf_family_model_type(type.get<std::string>())) return load_hf_family<T>(dir);
    if (is_hf_gemma_model_type(type.get<std::string>())) return load_hf_gemma<T>(dir);
    if (type != "gpt2")
      throw Error(config_json.string() + ": model_type " + type.dump() +
                  " is not one circuitry reads (it reads gpt2, gpt_neox, llama, qwen2, qwen3, mistral, gemma2 and gemma3_text, and "
                  "TransformerLens checkpoints)");
  }
  return load_checkpoint<T>(dir);
}

}  // namespace circuitry::io
