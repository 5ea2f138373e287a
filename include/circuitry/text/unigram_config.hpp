#pragma once
// What describes a SentencePiece Unigram tokenizer (Kudo 2018; T5, ALBERT, XLNet and many
// SentencePiece conversions), read into one UnigramConfig that unigram_tokenizer.hpp builds the
// tokenizer from. Two sources:
//   - a SentencePiece tokenizer.model of model_type UNIGRAM (sentencepiece_model.hpp), encoded as
//     the sentencepiece library does (its normalizer spec, float scores, user-defined pieces);
//   - a Hugging Face tokenizer.json whose model is Unigram (here), encoded as tokenizers does.
//
// tokenizer.json, read as follows:
//   model           Unigram: vocab [[piece, score], ...] (id = position), unk_id (null or an id),
//                   byte_fallback.
//   normalizer      null, or one of these or a Sequence of them, applied in order:
//                     Replace with a String pattern (every occurrence);
//                     Replace with a Regex pattern circuitry knows (transformers' converters write
//                     them): " {2,}" (runs of spaces), "\A +| +\z" (spaces at the ends),
//                     "\A" followed by plain characters (at the start only);
//                     Strip (Unicode whitespace at the left and/or right end); Prepend;
//                     Precompiled with an empty precompiled_charsmap (a no-op).
//                   A Precompiled charsmap (nmt_nfkc: T5, ALBERT), NFKC, Lowercase and the other
//                   normalizers are an Error naming the part: circuitry does not reproduce them.
//   pre_tokenizer   null, or one of these or a Sequence of them: Metaspace (replacement '\u2581',
//                   prepend_scheme always | first | never, split), WhitespaceSplit, and Split with a
//                   String pattern or a Regex that is an alternation of plain strings (how
//                   transformers isolates user-defined pieces), behavior Isolated.
//   added_tokens    as for BPE (bpe_config.hpp): each a token of its own wherever it occurs.
//   post_processor  its BOS only (load_tokenizer.hpp).
#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuitry/core/error.hpp"
#include "circuitry/text/bpe_config.hpp"
#include "circuitry/text/sentencepiece_config.hpp"

namespace circuitry::text {

/// SentencePiece's piece types (sentencepiece_model.proto), by their numbers there.
enum class PieceKind { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

struct UnigramPiece {
  std::string text;  // spaces spelled '\u2581'
  double score = 0;  // log probability
  PieceKind kind = PieceKind::normal;
};

/// One normalizer of a tokenizer.json, in the order they apply.
struct NormalizeStep {
  enum class Kind {
    replace_all,       // every `from` -> `to`
    replace_at_start,  // `from` at the start of the text -> `to`
    space_runs,        // every run of two or more spaces -> `to`
    strip,             // whitespace at the left and/or right end (only ' ' when spaces_only)
    prepend,           // `to` before the (non-empty) text
  } kind = Kind::replace_all;
  std::string from, to;
  bool left = false, right = false, spaces_only = false;
};

/// One pre-tokenizer of a tokenizer.json, in the order they apply.
struct PreTokenizeStep {
  enum class Kind {
    metaspace,         // spaces -> '\u2581', a '\u2581' before the text (`prefix`), split before each '\u2581'
    whitespace_split,  // words between runs of whitespace
    isolate,           // each occurrence of one of `literals` a word of its own
  } kind = Kind::metaspace;
  SpacePrefix prefix = SpacePrefix::every_piece;
  bool split = true;
  std::vector<std::string> literals;  // the first that matches at a position wins
};

struct UnigramConfig {
  std::vector<UnigramPiece> pieces;  // by id
  int unk_id = -1;                   // -1: none
  bool byte_fallback = false;
  // true: encode as the sentencepiece library (a tokenizer.model); false: as tokenizers (tokenizer.json)
  bool sentencepiece_library = false;
  // tokenizer.json
  std::vector<NormalizeStep> normalizers;
  std::vector<PreTokenizeStep> pre_tokenizers;
  std::vector<AddedToken> added;
  // tokenizer.model: the normalizer spec
  bool add_dummy_prefix = true, remove_extra_whitespaces = true, escape_whitespaces = true;
  std::string vocab_name, added_name;
};

namespace detail {

/// A regex that is plain text (no metacharacter unescaped), unescaped; false otherwise.
inline bool plain_regex(std::string_view regex, std::string& text) {
  text.clear();
  for (std::size_t i = 0; i < regex.size(); ++i) {
    const char c = regex[i];
    if (c == '\\') {
      if (++i == regex.size()) return false;
      const char e = regex[i];
      if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9')) return false;  // \A, \d, \1 ...
      text.push_back(e);
    } else if (std::string_view(".^$*+?()[]{}|").find(c) != std::string_view::npos) {
      return false;
    } else {
      text.push_back(c);
    }
  }
  return true;
}

inline void read_normalizer_step(const nlohmann::json& n, const std::string& name, std::vector<NormalizeStep>& steps) {
  const std::string type = string_field(n, "type");
  const std::string unsupported = name + ": the normalizer " + component_name(n) +
                                  " is not supported by circuitry's Unigram reader (it knows Replace, Strip, Prepend, an "
                                  "empty Precompiled and Sequences of them; see text/unigram_config.hpp)";
  if (n.is_null()) return;
  if (type == "Sequence") {
    require(field(n, "normalizers").is_array(), unsupported);
    for (const auto& part : n["normalizers"]) read_normalizer_step(part, name, steps);
    return;
  }
  NormalizeStep s;
  if (type == "Precompiled") {
    const auto& map = field(n, "precompiled_charsmap");
    require(map.is_null() || map == "",
            name + ": the normalizer Precompiled has a precompiled_charsmap (SentencePiece's nmt_nfkc tables, as T5 and ALBERT "
                   "have), which circuitry does not reproduce; tokenize the texts with Hugging Face transformers and give the "
                   "task as ids");
    return;
  }
  if (type == "Strip") {
    s.kind = NormalizeStep::Kind::strip;
    s.left = bool_field(n, "strip_left", false, name + ": the Strip normalizer");
    s.right = bool_field(n, "strip_right", false, name + ": the Strip normalizer");
  } else if (type == "Prepend") {
    s.kind = NormalizeStep::Kind::prepend;
    require(field(n, "prepend").is_string(), name + ": the Prepend normalizer has no \"prepend\" string");
    s.to = n["prepend"].get<std::string>();
  } else {
    require(type == "Replace" && field(n, "content").is_string(), unsupported);
    s.to = n["content"].get<std::string>();
    const auto& pattern = field(n, "pattern");
    std::string literal;
    if (field(pattern, "String").is_string()) {
      s.from = pattern["String"].get<std::string>();
      require(!s.from.empty(), name + ": a Replace normalizer with an empty String pattern");
    } else if (const std::string regex = string_field(pattern, "Regex"); regex == " {2,}") {
      s.kind = NormalizeStep::Kind::space_runs;
    } else if (regex == "\\A +| +\\z" && s.to.empty()) {
      s.kind = NormalizeStep::Kind::strip;
      s.left = s.right = s.spaces_only = true;
    } else if (regex.starts_with("\\A") && plain_regex(std::string_view(regex).substr(2), literal) && !literal.empty()) {
      s.kind = NormalizeStep::Kind::replace_at_start;
      s.from = literal;
    } else if (plain_regex(regex, literal) && !literal.empty()) {
      s.from = literal;
    } else {
      throw Error(name + ": the Replace normalizer's pattern " + pattern.dump() + " is a regex circuitry does not know "
                  "(it knows \" {2,}\", \"\\\\A +| +\\\\z\", \"\\\\A\" + plain text, and plain text)");
    }
  }
  steps.push_back(std::move(s));
}

inline void read_pre_tokenizer_step(const nlohmann::json& p, const std::string& name, std::vector<PreTokenizeStep>& steps) {
  const std::string type = string_field(p, "type");
  if (p.is_null()) return;
  if (type == "Sequence" && field(p, "pretokenizers").is_array()) {
    for (const auto& part : p["pretokenizers"]) read_pre_tokenizer_step(part, name, steps);
    return;
  }
  PreTokenizeStep s;
  if (type == "WhitespaceSplit") {
    s.kind = PreTokenizeStep::Kind::whitespace_split;
  } else if (type == "Metaspace") {
    require(string_field(p, "replacement") == kSpaceMark,
            name + ": the Metaspace pre_tokenizer's replacement is " + field(p, "replacement").dump() + ", not '\u2581'");
    std::string scheme = string_field(p, "prepend_scheme");
    if (scheme.empty()) scheme = bool_field(p, "add_prefix_space", true, name + ": the Metaspace pre_tokenizer") ? "always" : "never";
    require(scheme == "always" || scheme == "first" || scheme == "never",
            name + ": the Metaspace pre_tokenizer's prepend_scheme " + field(p, "prepend_scheme").dump() + " is not always, first or never");
    s.prefix = scheme == "always" ? SpacePrefix::every_piece : scheme == "first" ? SpacePrefix::first_piece : SpacePrefix::none;
    s.split = bool_field(p, "split", true, name + ": the Metaspace pre_tokenizer");
  } else {
    require(type == "Split", name + ": the pre_tokenizer " + component_name(p) + " is not supported by circuitry's Unigram reader "
                                    "(it knows Metaspace, WhitespaceSplit, Split of plain strings and Sequences of them)");
    s.kind = PreTokenizeStep::Kind::isolate;
    require(string_field(p, "behavior") == "Isolated" && !bool_field(p, "invert", false, name + ": the Split pre_tokenizer"),
            name + ": the Split pre_tokenizer has behavior " + field(p, "behavior").dump() + "; circuitry knows Isolated, invert false");
    const auto& pattern = field(p, "pattern");
    if (field(pattern, "String").is_string()) {
      s.literals.push_back(pattern["String"].get<std::string>());
    } else {
      const std::string regex = string_field(pattern, "Regex");
      std::size_t begin = 0;
      for (std::size_t i = 0; i <= regex.size(); ++i) {  // an alternation of plain strings "a|b|c"
        if (i < regex.size() && regex[i] == '\\') {
          ++i;
          continue;
        }
        if (i < regex.size() && regex[i] != '|') continue;
        std::string literal;
        require(plain_regex(std::string_view(regex).substr(begin, i - begin), literal) && !literal.empty(),
                name + ": the Split pre_tokenizer's pattern " + pattern.dump() + " is not an alternation of plain strings, "
                       "the only regex circuitry's Unigram reader knows there");
        s.literals.push_back(std::move(literal));
        begin = i + 1;
      }
    }
    for (const std::string& literal : s.literals) require(!literal.empty(), name + ": the Split pre_tokenizer's pattern is empty");
  }
  steps.push_back(std::move(s));
}

}  // namespace detail

/// A tokenizer.json whose model is Unigram, parsed; `name` names it in errors.
inline UnigramConfig read_unigram_json(const nlohmann::json& j, const std::string& name) {
  require(j.is_object() && j.contains("model") && j["model"].is_object(), name + ": no \"model\" object (not a Hugging Face tokenizer.json)");
  const auto& model = j["model"];
  require(detail::string_field(model, "type") == "Unigram", name + ": the model is " + detail::component_name(model) + ", not Unigram");
  UnigramConfig c;
  c.vocab_name = name + ": model.vocab";
  c.added_name = name + ": added_tokens";
  const auto& vocab = detail::field(model, "vocab");
  require(vocab.is_array() && !vocab.empty() && vocab.size() <= (std::size_t(1) << 30),
          c.vocab_name + " is not a non-empty list of [piece, score] (the vocabulary of a Unigram model)");
  c.pieces.reserve(vocab.size());
  for (std::size_t id = 0; id < vocab.size(); ++id) {
    const auto& entry = vocab[id];
    require(entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_number() && std::isfinite(entry[1].get<double>()),
            c.vocab_name + "[" + std::to_string(id) + "] is not [piece, finite score]");
    require(!entry[0].get_ref<const std::string&>().empty(), c.vocab_name + "[" + std::to_string(id) + "] is an empty piece");
    c.pieces.push_back({entry[0].get<std::string>(), entry[1].get<double>(), PieceKind::normal});
  }
  const auto& unk = detail::field(model, "unk_id");
  require(unk.is_null() || (unk.is_number_unsigned() && unk.get<std::size_t>() < vocab.size()),
          name + ": model.unk_id is " + unk.dump() + ", neither null nor an id of the vocabulary");
  if (!unk.is_null()) c.unk_id = unk.get<int>();
  c.byte_fallback = detail::bool_field(model, "byte_fallback", false, name + ": model");
  detail::read_normalizer_step(detail::field(j, "normalizer"), name, c.normalizers);
  detail::read_pre_tokenizer_step(detail::field(j, "pre_tokenizer"), name, c.pre_tokenizers);
  c.added = detail::read_added_tokens(detail::field(j, "added_tokens"), name);
  return c;
}

}  // namespace circuitry::text
