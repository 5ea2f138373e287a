#pragma once
// The CLI's tokenizer: a GGUF model file's own (text/gguf_tokenizer.hpp; a file without one is an
// error), a model or tokenizer directory's own (tokenizer.json, byte-level or SentencePiece BPE or
// Unigram; vocab.json + merges.txt; or a SentencePiece tokenizer.model) when it has one
// (text/load_tokenizer.hpp), else GPT-2's vocabulary embedded in the executable.
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <circuitry/io/gguf_file.hpp>
#include <circuitry/text/bpe_tokenizer.hpp>
#include <circuitry/text/load_tokenizer.hpp>

#include "embedded_tokenizer.hpp"

namespace circuitry::cli {

inline const text::ByteLevelBpeTokenizer& embedded_gpt2_tokenizer() {
  static const text::ByteLevelBpeTokenizer tokenizer = text::ByteLevelBpeTokenizer::from_strings(
      std::string_view(reinterpret_cast<const char*>(embedded_tokenizer::vocab_json), embedded_tokenizer::vocab_json_size),
      std::string_view(reinterpret_cast<const char*>(embedded_tokenizer::merges_txt), embedded_tokenizer::merges_txt_size),
      "the embedded GPT-2 vocabulary");
  return tokenizer;
}

/// The tokenizer of the GGUF file or directory `model_or_empty` if it has one, else the embedded
/// GPT-2 one. Each is loaded once and kept for the life of the program.
inline const text::Tokenizer& cli_tokenizer(const std::string& model_or_empty) {
  if (model_or_empty.empty() || !text::has_tokenizer(model_or_empty)) return embedded_gpt2_tokenizer();
  static std::map<std::string, std::unique_ptr<text::Tokenizer>> loaded;
  auto it = loaded.find(model_or_empty);
  if (it == loaded.end()) it = loaded.emplace(model_or_empty, text::load_tokenizer(model_or_empty)).first;
  return *it->second;
}

}  // namespace circuitry::cli
