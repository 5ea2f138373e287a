#pragma once
// Where tokenizers are chosen: the files of a model directory or a GGUF file say which kind of
// tokenizer it is, and the one that reads it is built (tokenizer.hpp):
//   - a GGUF file: its metadata (gguf_tokenizer.hpp), tokenizer.ggml.model "gpt2" -> byte-level
//     BPE, "llama" -> SentencePiece BPE;
//   - a directory: tokenizer.json, SentencePiece-style (Metaspace, Prepend or Replace(' ',
//     '\u2581'), byte fallback without ByteLevel: sentencepiece_config.hpp) or byte-level
//     (bpe_config.hpp); else vocab.json + merges.txt (GPT-2); a SentencePiece tokenizer.model alone
//     is refused by name.
#include <filesystem>
#include <memory>
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
  if (t.sentencepiece) return std::make_unique<SentencePieceBpeTokenizer>(t.spm);
  return std::make_unique<ByteLevelBpeTokenizer>(t.bpe);
}

/// A tokenizer.json's contents, of either kind; `name` names it in errors.
inline std::unique_ptr<Tokenizer> load_tokenizer_json(std::string_view text, const std::string& name) {
  const nlohmann::json j = io::parse_json(text, name);
  if (detail::is_sentencepiece_json(j)) return std::make_unique<SentencePieceBpeTokenizer>(read_sentencepiece_json(j, name));
  return std::make_unique<ByteLevelBpeTokenizer>(read_tokenizer_json_object(j, name));
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
