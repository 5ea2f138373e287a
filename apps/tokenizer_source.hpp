#pragma once
// The CLI's tokenizer: a model or tokenizer directory's own (tokenizer.json, or vocab.json +
// merges.txt; a SentencePiece tokenizer.model is refused by name) when it has one, else GPT-2's
// vocabulary embedded in the executable.
#include <map>
#include <string>
#include <string_view>

#include <circuitry/text/bpe_tokenizer.hpp>

#include "embedded_tokenizer.hpp"

namespace circuitry::cli {

inline const text::ByteLevelBpeTokenizer& embedded_gpt2_tokenizer() {
  static const text::ByteLevelBpeTokenizer tokenizer = text::ByteLevelBpeTokenizer::from_strings(
      std::string_view(reinterpret_cast<const char*>(embedded_tokenizer::vocab_json), embedded_tokenizer::vocab_json_size),
      std::string_view(reinterpret_cast<const char*>(embedded_tokenizer::merges_txt), embedded_tokenizer::merges_txt_size),
      "the embedded GPT-2 vocabulary");
  return tokenizer;
}

/// The tokenizer of directory `dir_or_empty` if it has one, else the embedded GPT-2 one. The
/// directory's is loaded once per directory and kept for the life of the program.
inline const text::ByteLevelBpeTokenizer& cli_tokenizer(const std::string& dir_or_empty) {
  if (dir_or_empty.empty() || !text::ByteLevelBpeTokenizer::directory_has_tokenizer(dir_or_empty)) return embedded_gpt2_tokenizer();
  static std::map<std::string, text::ByteLevelBpeTokenizer> loaded;
  auto it = loaded.find(dir_or_empty);
  if (it == loaded.end()) it = loaded.emplace(dir_or_empty, text::ByteLevelBpeTokenizer::from_directory(dir_or_empty)).first;
  return it->second;
}

}  // namespace circuitry::cli
