#pragma once
// What describes a SentencePiece BPE tokenizer (Llama 2, Mistral, Gemma), read into one
// SentencePieceConfig that sentencepiece_bpe.hpp builds the tokenizer from. Its vocabulary spells
// a space as '\u2581' (U+2581) and has the 256 byte tokens <0x00>..<0xFF> for byte fallback.
// Two sources:
//   - a Hugging Face tokenizer.json as transformers writes it for these families (here);
//   - a GGUF file's metadata, tokenizer.ggml.model "llama" (gguf_tokenizer.hpp).
//
// tokenizer.json, SentencePiece-style (tokenizers' serialization), read as follows:
//   model           BPE with vocab, merges (by rank), byte_fallback, unk_token (null or a token
//                   of the vocabulary), fuse_unk, ignore_merges; dropout null or 0, no
//                   continuing_subword_prefix or end_of_word_suffix. A Unigram model (T5,
//                   ALBERT, some SentencePiece conversions) is read by unigram_config.hpp.
//   the spaces, one of the three ways transformers writes them:
//     Llama 2 (legacy)   normalizer Sequence [Prepend('\u2581'), Replace(' ', '\u2581')], no pre_tokenizer:
//                        every piece of text (between added tokens) gets a '\u2581' before it;
//     Mistral and newer  no normalizer, pre_tokenizer Metaspace(replacement '\u2581', prepend_scheme
//                        always | first | never, split): spaces become '\u2581' and a '\u2581' goes before
//                        every piece (always) or the text's first (first) unless it begins with
//                        one; split cuts the text into words, each beginning at a '\u2581';
//     Gemma              normalizer Replace(' ', '\u2581') and no prefix; its pre_tokenizer
//                        Split(' ', MergedWithPrevious) finds no space left, so cuts nothing.
//   added_tokens    as for byte-level BPE (bpe_config.hpp).
//   post_processor (its BOS only: load_tokenizer.hpp), decoder, truncation, padding: not read
//   (encode adds no BOS).
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuitry/core/error.hpp"
#include "circuitry/text/bpe_config.hpp"

namespace circuitry::text {

/// Where a SentencePiece tokenizer puts a '\u2581' before the text.
enum class SpacePrefix {
  none,         // Gemma; Metaspace prepend_scheme never
  every_piece,  // the text and each piece after an added token (Llama 2's Prepend, llama.cpp, Metaspace always)
  first_piece,  // only a piece at the start of the text (Metaspace prepend_scheme first)
};

struct SentencePieceConfig {
  std::vector<std::pair<std::string, int>> vocab;  // (piece, id), spaces spelled '\u2581'
  std::vector<MergeRule> merges;                   // tokenizer.json: by rank
  std::vector<double> scores;                      // GGUF: by id; merges go by score (llama.cpp)
  std::vector<AddedToken> added;
  std::string unk_token;  // empty: none
  bool byte_fallback = true, fuse_unk = false, ignore_merges = false;
  SpacePrefix prefix = SpacePrefix::every_piece;
  bool prefix_before_space = true;  // false: no '\u2581' added before a piece that begins with a space (Metaspace)
  bool split_words = false;         // Metaspace split: each word begins at a '\u2581'
  bool remove_extra_whitespaces = false;  // a tokenizer.model's: spaces at the ends dropped, one of each run kept
  std::string vocab_name, merges_name, added_name;
};

namespace detail {

inline constexpr std::string_view kSpaceMark = "\u2581";

/// Appends text with each space written as '\u2581'.
inline void append_escaped(std::string_view text, std::string& out) {
  for (const char c : text) {
    if (c == ' ') out.append(kSpaceMark);
    else out.push_back(c);
  }
}

/// A Replace(' ', '\u2581') normalizer.
inline bool replaces_spaces(const nlohmann::json& n) {
  const auto& pattern = field(n, "pattern");
  return string_field(n, "type") == "Replace" && string_field(pattern, "String") == " " && string_field(n, "content") == kSpaceMark;
}

/// The normalizer and pre_tokenizer, checked to be one of the three ways above.
inline void read_space_handling(const nlohmann::json& j, const std::string& name, SentencePieceConfig& c) {
  const auto& n = field(j, "normalizer");
  const auto& pre = field(j, "pre_tokenizer");
  const std::string known = "; circuitry knows Llama 2's (normalizer Sequence [Prepend('\u2581'), Replace(' ', '\u2581')], no pre_tokenizer), "
                            "Metaspace('\u2581') with no normalizer, and Gemma's (normalizer Replace(' ', '\u2581'))";
  const auto& parts = field(n, "normalizers");
  if (string_field(n, "type") == "Sequence" && parts.is_array() && parts.size() == 2 && string_field(parts[0], "type") == "Prepend" &&
      replaces_spaces(parts[1])) {
    require(string_field(parts[0], "prepend") == kSpaceMark, name + ": the Prepend normalizer adds " + field(parts[0], "prepend").dump() + known);
    require(pre.is_null(), name + ": the pre_tokenizer " + component_name(pre) + " after a Prepend normalizer is not supported" + known);
    c.prefix = SpacePrefix::every_piece;
    c.prefix_before_space = true;
    return;
  }
  if (replaces_spaces(n)) {  // Gemma: no prefix; Split(' ') after the Replace finds no space
    const auto& pattern = field(pre, "pattern");
    const bool split_on_space = string_field(pre, "type") == "Split" && string_field(pattern, "String") == " " &&
                                !bool_field(pre, "invert", false, name + ": the Split pre_tokenizer");
    require(pre.is_null() || split_on_space, name + ": the pre_tokenizer " + component_name(pre) + " after a Replace normalizer is not supported" + known);
    c.prefix = SpacePrefix::none;
    return;
  }
  require(n.is_null() && string_field(pre, "type") == "Metaspace",
          name + ": normalizer " + component_name(n) + " with pre_tokenizer " + component_name(pre) + " is not supported" + known);
  require(string_field(pre, "replacement") == kSpaceMark,
          name + ": the Metaspace pre_tokenizer's replacement is " + field(pre, "replacement").dump() + ", not '\u2581'");
  std::string scheme = string_field(pre, "prepend_scheme");
  if (scheme.empty())  // files before tokenizers 0.15: add_prefix_space
    scheme = bool_field(pre, "add_prefix_space", true, name + ": the Metaspace pre_tokenizer") ? "always" : "never";
  require(scheme == "always" || scheme == "first" || scheme == "never",
          name + ": the Metaspace pre_tokenizer's prepend_scheme " + field(pre, "prepend_scheme").dump() + " is not always, first or never");
  c.prefix = scheme == "always" ? SpacePrefix::every_piece : scheme == "first" ? SpacePrefix::first_piece : SpacePrefix::none;
  c.prefix_before_space = false;
  c.split_words = bool_field(pre, "split", true, name + ": the Metaspace pre_tokenizer");
}

}  // namespace detail

/// A SentencePiece-style Hugging Face tokenizer.json, parsed; `name` names it in errors.
inline SentencePieceConfig read_sentencepiece_json(const nlohmann::json& j, const std::string& name) {
  require(j.is_object() && j.contains("model") && j["model"].is_object(),
          name + ": no \"model\" object (not a Hugging Face tokenizer.json)");
  const auto& model = j["model"];
  require(detail::string_field(model, "type") != "Unigram",
          name + ": a SentencePiece Unigram model (model type Unigram), not BPE; load it with text::load_tokenizer "
                 "(load_tokenizer.hpp) or read it with read_unigram_json (unigram_config.hpp)");
  SentencePieceConfig c;
  ByteLevelBpeConfig bpe;  // the model's vocab, merges and options, read as for byte-level BPE
  detail::read_bpe_model(model, name, bpe);
  c.vocab = std::move(bpe.vocab);
  c.merges = std::move(bpe.merges);
  c.ignore_merges = bpe.ignore_merges;
  c.byte_fallback = detail::bool_field(model, "byte_fallback", false, name + ": model");
  c.fuse_unk = detail::bool_field(model, "fuse_unk", false, name + ": model");
  const auto& unk = detail::field(model, "unk_token");
  require(unk.is_null() || unk.is_string(), name + ": model.unk_token is " + unk.dump() + ", neither null nor a string");
  if (unk.is_string()) c.unk_token = unk.get<std::string>();
  detail::read_space_handling(j, name, c);
  c.added = detail::read_added_tokens(detail::field(j, "added_tokens"), name);
  c.vocab_name = name + ": model.vocab";
  c.merges_name = name;
  c.added_name = name + ": added_tokens";
  return c;
}

}  // namespace circuitry::text
