#pragma once
// Where tokenizers are chosen: the files of a model directory or a GGUF file say which kind of
// tokenizer it is, and the one that reads it is built (tokenizer.hpp):
//   - a GGUF file: its metadata (gguf_tokenizer.hpp), tokenizer.ggml.model "gpt2" -> byte-level
//     BPE, "llama" -> SentencePiece BPE;
//   - a directory: tokenizer.json, SentencePiece-style (Metaspace, Prepend or Replace(' ',
//     '\u2581'), byte fallback without ByteLevel: sentencepiece_config.hpp) or byte-level
//     (bpe_config.hpp); else vocab.json + merges.txt (GPT-2); a SentencePiece tokenizer.model alone
//     is refused by name.
// And whether the model expects BOS before a sequence (tokenizer.hpp, bos()): a GGUF file's
// add_bos_token (gguf_tokenizer.hpp); a tokenizer.json's post_processor, when it is (or a Sequence
// holds) a TemplateProcessing whose "single" template begins with a special token before $A: that
// token's id (Llama 2's <s>, Llama 3's <|begin_of_text|>); special tokens after $A (an EOS) are not
// read, as the metric reads the token after the prompt. No other post-processor adds BOS here
// (ByteLevel: GPT-2, SmolLM2, Qwen2), nor vocab.json + merges.txt.
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
#include "circuitry/text/tokenizer.hpp"

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
  if (detail::is_sentencepiece_json(j)) tokenizer = std::make_unique<SentencePieceBpeTokenizer>(read_sentencepiece_json(j, name));
  else tokenizer = std::make_unique<ByteLevelBpeTokenizer>(read_tokenizer_json_object(j, name));
  tokenizer->set_bos(detail::post_processor_bos(j, name, tokenizer->vocab_size()));
  return tokenizer;
}

/// The tokenizer of a GGUF file or a directory (see the top of this file).
inline std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path) {
  if (io::is_gguf_file(path)) return load_gguf_tokenizer(io::GgufFile::open(path));
  std::error_code ec;
  if (std::filesystem::exists(path / "tokenizer.json", ec))
    return load_tokenizer_json(io::read_regular_file(path / "tokenizer.json"), (path / "tokenizer.json").string());
  return std::make_unique<ByteLevelBpeTokenizer>(read_tokenizer_directory(path));
}

/// Whether `path` has a tokenizer load_tokenizer reads (or refuses by name): a GGUF file, or a
/// directory with tokenizer.json, vocab.json + merges.txt, or tokenizer.model.
inline bool has_tokenizer(const std::filesystem::path& path) {
  return io::is_gguf_file(path) || directory_has_tokenizer(path);
}

}  // namespace circuitry::text
