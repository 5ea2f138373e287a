#pragma once
// The tokenizer a GGUF file carries in its metadata (llama.cpp's tokenizer.ggml.* keys), read into
// the ByteLevelBpeConfig that ByteLevelBpeTokenizer is built from, or the SentencePieceConfig of
// SentencePieceBpeTokenizer (load_tokenizer.hpp builds the one the file has):
//   tokenizer.ggml.model       "gpt2": byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM, ...);
//                              "llama": SentencePiece BPE (Llama 2, Mistral, Gemma), llama.cpp's
//                              SPM tokenizer: no merges, tokenizer.ggml.scores (one number per
//                              token) rank the merges, <0xNN> tokens (type 6) are the byte
//                              fallback, tokenizer.ggml.add_space_prefix (default true) puts a
//                              '\u2581' before the text and after each added token;
//                              others are refused by name
//   tokenizer.ggml.tokens      the vocabulary, id = position, spelled in GPT-2's byte alphabet
//   tokenizer.ggml.merges      "left right", by rank
//   tokenizer.ggml.token_type  per token: 1 normal, 2 unknown, 3 control, 4 user-defined,
//                              5 unused, 6 byte; control and user-defined tokens are added tokens
//                              (found whole in the raw text; control ones special)
//   tokenizer.ggml.pre         the pre-tokenizer, by llama.cpp's name for it: gpt-2 and phi-2 ->
//                              GPT-2's pattern; llama3, llama-v3 and llama-bpe -> Llama 3's;
//                              qwen2 -> Qwen2's (with its NFC normalizer, as Qwen2's
//                              tokenizer.json has); smollm and starcoder -> each digit a word,
//                              then GPT-2's pattern (llama-vocab.cpp gives both the regexes \p{N}
//                              and GPT-2's); any other name is an Error (circuitry has no other
//                              pattern, and a wrong one would split words differently)
//   tokenizer.ggml.bos_token_id, eos_token_id   optional; checked to be in the vocabulary
//   tokenizer.ggml.add_bos_token  whether BOS goes before a sequence (tokenizer.hpp, bos()); absent,
//                              llama.cpp's default (llama-vocab.cpp): true for "llama" and for the
//                              Llama 3 pre-tokenizers, false for the others; true with no
//                              bos_token_id is an Error
#include <optional>
#include <string>
#include <vector>

#include "circuitry/core/error.hpp"
#include "circuitry/io/gguf_file.hpp"
#include "circuitry/text/bpe_config.hpp"
#include "circuitry/text/sentencepiece_config.hpp"

namespace circuitry::text {

struct GgufTokenizer {
  bool sentencepiece = false;  // which of the two configs the file gives
  ByteLevelBpeConfig bpe;
  SentencePieceConfig spm;
  std::optional<int> bos_id, eos_id;
  bool add_bos = false;  // BOS (bos_id) goes before a sequence
};

/// Whether the file has a tokenizer in its metadata.
inline bool gguf_has_tokenizer(const io::GgufFile& file) { return file.has("tokenizer.ggml.model"); }

namespace detail {

/// llama.cpp's tokenizer.ggml.pre names for the patterns circuitry has (llama-vocab.cpp).
inline std::optional<PreTokenizer> gguf_pre_tokenizer(const std::string& name) {
  if (name == "gpt-2" || name == "phi-2") return PreTokenizer::gpt2;
  if (name == "llama3" || name == "llama-v3" || name == "llama-bpe") return PreTokenizer::llama3;
  if (name == "qwen2") return PreTokenizer::qwen2;
  if (name == "smollm" || name == "starcoder") return PreTokenizer::digits_then_gpt2;
  return std::nullopt;
}

/// tokenizer.ggml.token_type, one entry per token (1 normal, 2 unknown, 3 control, 4 user-defined,
/// 5 unused, 6 byte), or empty when the file has none.
inline std::vector<double> gguf_token_types(const io::GgufFile& file, std::size_t n_tokens, const std::string& name) {
  if (!file.has("tokenizer.ggml.token_type")) return {};
  std::vector<double> types = file.number_array("tokenizer.ggml.token_type");
  require(types.size() == n_tokens, name + " has " + std::to_string(types.size()) + " entries for " + std::to_string(n_tokens) + " tokens");
  return types;
}

/// tokenizer.ggml.model "llama": tokens, scores, token_type, add_space_prefix.
inline SentencePieceConfig read_gguf_sentencepiece(const io::GgufFile& file) {
  const std::string where = file.path().string();
  SentencePieceConfig c;
  c.vocab_name = where + ": tokenizer.ggml.tokens";
  c.merges_name = where + ": tokenizer.ggml.scores";
  c.added_name = where + ": tokenizer.ggml.token_type";
  const std::vector<std::string>& tokens = file.string_array("tokenizer.ggml.tokens");
  require(!tokens.empty() && tokens.size() <= (std::size_t(1) << 30), c.vocab_name + ": expected 1 to 2^30 tokens");
  require(file.has("tokenizer.ggml.scores"), where + ": tokenizer.ggml.model is \"llama\" and there is no tokenizer.ggml.scores "
                                                     "(SentencePiece merges by the scores of the tokens)");
  c.scores = file.number_array("tokenizer.ggml.scores");
  require(c.scores.size() == tokens.size(), c.merges_name + " has " + std::to_string(c.scores.size()) + " entries for " +
                                                std::to_string(tokens.size()) + " tokens (one score per token)");
  const std::vector<double> types = gguf_token_types(file, tokens.size(), c.added_name);
  c.vocab.reserve(tokens.size());
  for (std::size_t id = 0; id < tokens.size(); ++id) {
    c.vocab.emplace_back(tokens[id], int(id));  // llama.cpp merges into any token's text
    const double type = types.empty() ? 1 : types[id];
    if ((type == 3 || type == 4) && !tokens[id].empty()) c.added.push_back({tokens[id], int(id), type == 3, false});
  }
  bool space_prefix = true;
  if (const io::GgufValue* v = file.find("tokenizer.ggml.add_space_prefix")) {
    require(v->type == io::GgufValueType::boolean, where + ": tokenizer.ggml.add_space_prefix is not true or false");
    space_prefix = v->number != 0;
  }
  c.prefix = space_prefix ? SpacePrefix::every_piece : SpacePrefix::none;
  c.byte_fallback = true;
  return c;
}

}  // namespace detail

inline GgufTokenizer read_gguf_tokenizer(const io::GgufFile& file) {
  const std::string where = file.path().string();
  if (!gguf_has_tokenizer(file)) throw Error(where + ": no tokenizer in the file (no metadata 'tokenizer.ggml.model')");
  const std::string& model = file.string_value("tokenizer.ggml.model");
  if (model != "gpt2" && model != "llama")
    throw Error(where + ": tokenizer.ggml.model is \"" + model + "\"; circuitry reads byte-level BPE (\"gpt2\") and SentencePiece BPE "
                "(\"llama\") tokenizers only; " + detail::kSentencePieceAdvice);
  GgufTokenizer t;
  if (model == "llama") {
    t.sentencepiece = true;
    t.spm = detail::read_gguf_sentencepiece(file);
  }
  for (const auto& [key, id] : {std::pair{"tokenizer.ggml.bos_token_id", &t.bos_id}, std::pair{"tokenizer.ggml.eos_token_id", &t.eos_id}})
    if (file.has(key)) {
      const std::size_t value = file.index_value(key);
      const std::size_t n = file.string_array("tokenizer.ggml.tokens").size();
      require(value < n, where + ": " + key + " is " + std::to_string(value) + ", outside the vocabulary of " + std::to_string(n) + " tokens");
      *id = int(value);
    }
  const std::string pre = file.has("tokenizer.ggml.pre") ? file.string_value("tokenizer.ggml.pre") : "default";
  if (const io::GgufValue* v = file.find("tokenizer.ggml.add_bos_token")) {
    require(v->type == io::GgufValueType::boolean, where + ": tokenizer.ggml.add_bos_token is not true or false");
    t.add_bos = v->number != 0;
    require(!t.add_bos || t.bos_id, where + ": tokenizer.ggml.add_bos_token is true and there is no tokenizer.ggml.bos_token_id");
  } else {
    t.add_bos = t.bos_id && (t.sentencepiece || pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe");
  }
  if (t.sentencepiece) return t;
  ByteLevelBpeConfig& c = t.bpe;
  c.vocab_name = where + ": tokenizer.ggml.tokens";
  c.merges_name = where + ": tokenizer.ggml.merges";
  c.added_name = where + ": tokenizer.ggml.token_type";
  const auto pre_tokenizer = detail::gguf_pre_tokenizer(pre);
  if (!pre_tokenizer)
    throw Error(where + ": tokenizer.ggml.pre is \"" + pre + "\", a pre-tokenizer circuitry does not have (it has gpt-2, phi-2, "
                "llama3, llama-v3, llama-bpe, qwen2, smollm and starcoder)");
  c.pre_tokenizer = *pre_tokenizer;
  c.normalizer = pre == "qwen2" ? Normalizer::nfc : Normalizer::none;

  const std::vector<std::string>& tokens = file.string_array("tokenizer.ggml.tokens");
  require(!tokens.empty() && tokens.size() <= (std::size_t(1) << 30), c.vocab_name + ": expected 1 to 2^30 tokens");
  const std::vector<double> types = detail::gguf_token_types(file, tokens.size(), c.added_name);
  c.vocab.reserve(tokens.size());
  for (std::size_t id = 0; id < tokens.size(); ++id) {
    const double type = types.empty() ? 1 : types[id];
    if (type == 3 || type == 4) c.added.push_back({tokens[id], int(id), type == 3, false});
    else c.vocab.emplace_back(tokens[id], int(id));
  }
  if (file.has("tokenizer.ggml.merges")) {
    const std::vector<std::string>& merges = file.string_array("tokenizer.ggml.merges");
    c.merges.reserve(merges.size());
    for (std::size_t i = 0; i < merges.size(); ++i)
      c.merges.push_back(detail::split_merge(merges[i], c.merges_name + "[" + std::to_string(i) + "]"));
  }
  return t;
}

}  // namespace circuitry::text
