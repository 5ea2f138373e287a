#pragma once
// Where tokenizers are chosen: the files of a model directory or a GGUF file say which kind of
// tokenizer it is, and the one that reads it is built (tokenizer.hpp):
//   - a GGUF file: its metadata (gguf_tokenizer.hpp), tokenizer.ggml.model "gpt2" -> byte-level
//     BPE, "llama" -> SentencePiece BPE;
//   - a directory: tokenizer.json, with a Unigram model (unigram_config.hpp), SentencePiece-style
//     BPE (Metaspace, Prepend or Replace(' ', '\u2581'), byte fallback without ByteLevel:
//     sentencepiece_config.hpp) or byte-level BPE (bpe_config.hpp); else vocab.json + merges.txt
//     (GPT-2); else a SentencePiece tokenizer.model (sentencepiece_model.hpp);
//   - a SentencePiece model file itself (tokenizer.model): Unigram or BPE by its model_type.
// And whether the model expects BOS before a sequence (tokenizer.hpp, bos()): a GGUF file's
// add_bos_token (gguf_tokenizer.hpp); a tokenizer.json's post_processor, when it is (or a Sequence
// holds) a TemplateProcessing whose "single" template begins with a special token before $A: that
// token's id (Llama 2's <s>, Llama 3's <|begin_of_text|>); special tokens after $A (an EOS) are not
// read, as the metric reads the token after the prompt. No other post-processor adds BOS here
// (ByteLevel: GPT-2, SmolLM2, Qwen2), nor vocab.json + merges.txt. A tokenizer.model gives its
// trainer_spec.bos_id unless it is -1 (as llama.cpp adds BOS for SentencePiece models by default).
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "circuitry/core/error.hpp"
#include "circuitry/io/gguf_file.hpp"
#include "circuitry/io/json_parse.hpp"
#include "circuitry/io/read_file.hpp"
#include "circuitry/text/bpe_config.hpp"
#include "circuitry/text/bpe_tokenizer.hpp"
#include "circuitry/text/gguf_tokenizer.hpp"
#include "circuitry/text/sentencepiece_bpe.hpp"
#include "circuitry/text/sentencepiece_config.hpp"
#include "circuitry/text/sentencepiece_model.hpp"
#include "circuitry/text/tokenizer.hpp"
#include "circuitry/text/unigram_config.hpp"
#include "circuitry/text/unigram_tokenizer.hpp"

namespace circuitry::text {

/// The tokenizer of a GGUF file's metadata.
inline std::unique_ptr<Tokenizer> load_gguf_tokenizer(const io::GgufFile& file) {
  const GgufTokenizer t = read_gguf_tokenizer(file);
  std::unique_ptr<Tokenizer> tokenizer;
  if (t.sentencepiece) tokenizer = std::make_unique<SentencePieceBpeTokenizer>(t.spm);
  else tokenizer = std::make_unique<ByteLevelBpeTokenizer>(t.bpe);
  if (t.add_bos) tokenizer->set_bos(t.bos_id);
  return tokenizer;
}

namespace detail {

/// The BOS a tokenizer.json's post_processor puts before a sequence (see the top), checked
/// against the vocabulary; `name` names the file in errors.
inline std::optional<int> post_processor_bos(const nlohmann::json& j, const std::string& name, std::size_t vocab_size) {
  const nlohmann::json& post = field(j, "post_processor");
  const nlohmann::json* tp = nullptr;
  if (has_type(post, {"TemplateProcessing"})) tp = &post;
  else if (has_type(post, {"Sequence"}) && field(post, "processors").is_array())
    for (const nlohmann::json& p : post["processors"])
      if (has_type(p, {"TemplateProcessing"})) tp = &p;
  if (tp == nullptr) return std::nullopt;
  const nlohmann::json& single = field(*tp, "single");
  require(single.is_array(), name + ": post_processor TemplateProcessing has no \"single\" template list");
  if (single.empty() || !single[0].is_object() || !single[0].contains("SpecialToken")) return std::nullopt;
  const nlohmann::json& special = single[0]["SpecialToken"];
  require(special.is_object() && special.contains("id") && special["id"].is_string(),
          name + ": post_processor TemplateProcessing: the first SpecialToken of \"single\" has no \"id\" string");
  const std::string token = special["id"].get<std::string>();
  const nlohmann::json& entry = field(field(*tp, "special_tokens"), token.c_str());
  const nlohmann::json& ids = field(entry, "ids");
  require(ids.is_array() && ids.size() == 1 && ids[0].is_number_unsigned() && ids[0].get<std::size_t>() < vocab_size,
          name + ": post_processor TemplateProcessing: special_tokens[" + nlohmann::json(token).dump() +
              "] must give one id in the vocabulary (the BOS put before a sequence)");
  return ids[0].get<int>();
}

}  // namespace detail

/// A tokenizer.json's contents, of either kind; `name` names it in errors.
inline std::unique_ptr<Tokenizer> load_tokenizer_json(std::string_view text, const std::string& name) {
  const nlohmann::json j = io::parse_json(text, name);
  std::unique_ptr<Tokenizer> tokenizer;
  if (detail::string_field(detail::field(j, "model"), "type") == "Unigram") tokenizer = std::make_unique<UnigramTokenizer>(read_unigram_json(j, name));
  else if (detail::is_sentencepiece_json(j)) tokenizer = std::make_unique<SentencePieceBpeTokenizer>(read_sentencepiece_json(j, name));
  else tokenizer = std::make_unique<ByteLevelBpeTokenizer>(read_tokenizer_json_object(j, name));
  tokenizer->set_bos(detail::post_processor_bos(j, name, tokenizer->vocab_size()));
  return tokenizer;
}

/// A SentencePiece tokenizer.model's contents, Unigram or BPE; `name` names it in errors.
inline std::unique_ptr<Tokenizer> load_sentencepiece_model(std::string_view bytes, const std::string& name) {
  const SentencePieceModel model = read_sentencepiece_model(bytes, name);
  std::unique_ptr<Tokenizer> tokenizer;
  if (model.model_type == 1) tokenizer = std::make_unique<UnigramTokenizer>(unigram_config(model));
  else tokenizer = std::make_unique<SentencePieceBpeTokenizer>(sentencepiece_bpe_config(model));
  if (model.bos_id >= 0) tokenizer->set_bos(int(model.bos_id));
  return tokenizer;
}

/// The tokenizer of a GGUF file, a tokenizer.model or a directory (see the top of this file).
inline std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path) {
  if (io::is_gguf_file(path)) return load_gguf_tokenizer(io::GgufFile::open(path));
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) return load_sentencepiece_model(io::read_regular_file(path), path.string());
  if (std::filesystem::exists(path / "tokenizer.json", ec))
    return load_tokenizer_json(io::read_regular_file(path / "tokenizer.json"), (path / "tokenizer.json").string());
  const bool gpt2_files = std::filesystem::exists(path / "vocab.json", ec) && std::filesystem::exists(path / "merges.txt", ec);
  if (!gpt2_files && std::filesystem::exists(path / "tokenizer.model", ec))
    return load_sentencepiece_model(io::read_regular_file(path / "tokenizer.model"), (path / "tokenizer.model").string());
  return std::make_unique<ByteLevelBpeTokenizer>(read_tokenizer_directory(path));
}

/// Whether `path` has a tokenizer load_tokenizer reads (or refuses by name): a GGUF file, a
/// SentencePiece model file (*.model), or a directory with tokenizer.json, vocab.json +
/// merges.txt, or tokenizer.model.
inline bool has_tokenizer(const std::filesystem::path& path) {
  std::error_code ec;
  return io::is_gguf_file(path) || (std::filesystem::is_regular_file(path, ec) && path.extension() == ".model") ||
         directory_has_tokenizer(path);
}

}  // namespace circuitry::text
