#pragma once
// The files that describe a byte-level BPE tokenizer, read into one ByteLevelBpeConfig:
//   - GPT-2's vocab.json ({token: id}) + merges.txt (an optional "#version" line, then one
//     "left right" pair a line, by rank); <|endoftext|> is the one special token;
//   - a Hugging Face tokenizer.json (tokenizers' serialization, tokenizer/serialization.rs), whose
//     parts are read as follows:
//       model           type "BPE" with vocab {token: id} and merges ("a b" or ["a", "b"], by
//                       rank); ignore_merges (Llama 3: a word that is itself a token is that
//                       token, merges or not); dropout null, no continuing_subword_prefix or
//                       end_of_word_suffix (those are not byte-level BPE); byte_fallback only
//                       with a ByteLevel pre-tokenizer (SmolLM2), where every byte is already a
//                       symbol, so that it changes no id;
//       normalizer      null or an empty Sequence (SmolLM2), or NFC (Pythia, Qwen2);
//       pre_tokenizer   ByteLevel with use_regex (GPT-2's pattern: GPT-2, Pythia), or a Sequence
//                       of Split(Regex pattern, behavior Isolated) and ByteLevel without
//                       use_regex, for a pattern pretokenizer.hpp knows (GPT-2's, Llama 3's,
//                       Qwen2's), or a Sequence of Digits(individual_digits) and ByteLevel with
//                       use_regex (StarCoder2, SmolLM); add_prefix_space false;
//       added_tokens    [{id, content, special, normalized, lstrip, rstrip, single_word}]: each
//                       a token of its own wherever its content occurs (added_tokens.hpp);
//       post_processor, decoder, truncation, padding: not read here (load_tokenizer.hpp reads
//                       the post-processor's BOS). They do not change the ids of a text:
//                       encode() gives what tokenizers' encode(text, add_special_tokens=False)
//                       gives (no BOS), and decode() is the ByteLevel decoder's.
//     Anything else (another model, normalizer or pre-tokenizer, an unknown pattern) is one
//     Error naming the file and the part. SentencePiece-style tokenizer.json files (Llama 2,
//     Mistral, Gemma: Metaspace, Prepend or Replace(' ', '\u2581'), byte fallback without a
//     ByteLevel pre-tokenizer, Unigram) are read by sentencepiece_config.hpp, and
//     load_tokenizer.hpp picks the reader (here they are an Error saying so), as for a directory
//     with only a SentencePiece tokenizer.model (sentencepiece_model.hpp).
#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuitry/core/error.hpp"
#include "circuitry/io/json_parse.hpp"
#include "circuitry/io/read_file.hpp"
#include "circuitry/text/pretokenizer.hpp"

namespace circuitry::text {

/// A tokenizer.json normalizer the tokenizer applies before pre-tokenization.
enum class Normalizer { none, nfc };

/// One merge rule "left right", and where it was written (for errors).
struct MergeRule {
  std::string left, right, where;
};

/// One of tokenizer.json's added_tokens.
struct AddedToken {
  std::string content;
  int id = -1;
  bool special = false;     // special tokens (skip_special_tokens drops them when decoding)
  bool normalized = false;  // true: found in the normalized text; false: in the raw text, first
};

/// What the files say, checked for shape but not yet for consistency (the tokenizer does that).
struct ByteLevelBpeConfig {
  std::vector<std::pair<std::string, int>> vocab;  // (token as the file spells it, id)
  std::vector<MergeRule> merges;                   // by rank
  std::vector<AddedToken> added;
  Normalizer normalizer = Normalizer::none;
  PreTokenizer pre_tokenizer = PreTokenizer::gpt2;
  bool ignore_merges = false;
  std::string vocab_name, merges_name, added_name;  // where each came from, for errors
};

namespace detail {

/// obj[key] if obj is an object holding a string there, else "" (so that a value of the wrong
/// type in untrusted JSON reads as "not what we know" rather than throwing nlohmann's error).
inline std::string string_field(const nlohmann::json& obj, const char* key) {
  return obj.is_object() && obj.contains(key) && obj[key].is_string() ? obj[key].get<std::string>() : std::string();
}

/// obj[key] as a bool, `otherwise` when absent or null; Error naming `where` for another type.
inline bool bool_field(const nlohmann::json& obj, const char* key, bool otherwise, const std::string& where) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return otherwise;
  require(obj[key].is_boolean(), where + ": \"" + key + "\" is not true or false");
  return obj[key].get<bool>();
}

/// obj[key], or null when obj is no object or lacks it.
inline const nlohmann::json& field(const nlohmann::json& obj, const char* key) {
  static const nlohmann::json null;
  return obj.is_object() && obj.contains(key) ? obj[key] : null;
}

/// A tokenizer.json's "type" names of a component and of the parts of a Sequence, as
/// "Sequence [Prepend, Replace]"; "null" for none; the JSON itself (cut short) without a type.
inline std::string component_name(const nlohmann::json& c) {
  if (c.is_null()) return "null";
  std::string name = string_field(c, "type");
  if (name.empty()) {
    const std::string json = c.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return json.size() <= 80 ? json : json.substr(0, 77) + "...";
  }
  for (const char* list : {"normalizers", "pretokenizers", "decoders", "processors"})
    if (c.contains(list) && c[list].is_array()) {
      name += " [";
      for (std::size_t i = 0; i < c[list].size(); ++i) name += (i ? ", " : "") + component_name(c[list][i]);
      name += "]";
    }
  return name;
}

/// Whether component c (or a part of it) has one of the given types.
inline bool has_type(const nlohmann::json& c, std::initializer_list<std::string_view> types) {
  if (!c.is_object()) return false;
  for (const auto t : types)
    if (string_field(c, "type") == t) return true;
  for (const char* list : {"normalizers", "pretokenizers", "decoders"})
    if (c.contains(list) && c[list].is_array())
      for (const auto& part : c[list])
        if (has_type(part, types)) return true;
  return false;
}

inline constexpr const char* kSentencePieceAdvice =
    "circuitry reads byte-level BPE and SentencePiece BPE tokenizers from a tokenizer.json or a GGUF file; tokenize the "
    "texts with Hugging Face transformers and give the task as ids (\"clean\": [...], \"corrupted\": [...], \"answer\", "
    "\"wrong\")";

/// Whether a tokenizer.json is SentencePiece-style (Llama 2, Mistral, Gemma; read by
/// sentencepiece_config.hpp) rather than byte-level: a Unigram model, byte_fallback without a
/// ByteLevel pre-tokenizer, Metaspace, or a normalizer that writes spaces as '\u2581' (Prepend,
/// Replace). byte_fallback alone is not: on a byte-level BPE (SmolLM2's) every byte is a symbol of
/// the vocabulary's alphabet, never an unknown character, so the <0xNN> tokens are never looked for.
inline bool is_sentencepiece_json(const nlohmann::json& j) {
  const auto& model = field(j, "model");
  const bool byte_level = has_type(field(j, "pre_tokenizer"), {"ByteLevel"});
  return string_field(model, "type") == "Unigram" || (field(model, "byte_fallback") == true && !byte_level) ||
         has_type(field(j, "pre_tokenizer"), {"Metaspace"}) || has_type(field(j, "normalizer"), {"Prepend", "Replace"});
}

/// The Error for a SentencePiece-style tokenizer.json given to the byte-level reader.
inline void refuse_sentencepiece(const nlohmann::json& j, const std::string& name) {
  if (is_sentencepiece_json(j))
    throw Error(name + ": a SentencePiece-style tokenizer (model " + component_name(field(j, "model")) + ", pre_tokenizer " +
                component_name(field(j, "pre_tokenizer")) + ", normalizer " + component_name(field(j, "normalizer")) +
                "), not byte-level BPE; load it with text::load_tokenizer (load_tokenizer.hpp), which reads both kinds");
}

/// "left right" -> the rule; `where` names the line or entry.
inline MergeRule split_merge(std::string_view line, const std::string& where) {
  const std::size_t space = line.find(' ');
  require(space != std::string_view::npos && space > 0 && space + 1 < line.size() &&
              line.find(' ', space + 1) == std::string_view::npos,
          where + ": expected two symbols separated by one space, got '" + std::string(line) + "'");
  return {std::string(line.substr(0, space)), std::string(line.substr(space + 1)), where};
}

/// {token: id, ...}, each id an integer.
inline std::vector<std::pair<std::string, int>> read_vocab(const nlohmann::json& j, const std::string& name) {
  require(j.is_object() && !j.empty(), name + ": not a BPE vocabulary (expected a JSON object {\"token\": id, ...})");
  std::vector<std::pair<std::string, int>> vocab;
  vocab.reserve(j.size());
  for (const auto& [token, value] : j.items()) {
    require(value.is_number_integer() && value.get<long long>() >= 0 && value.get<long long>() <= (1 << 30),
            name + ": the id of token '" + token + "' is not an integer in 0..2^30");
    vocab.emplace_back(token, int(value.get<long long>()));
  }
  return vocab;
}

/// merges.txt: an optional "#version" line, then one "a b" pair a line, by rank.
inline std::vector<MergeRule> read_merges_txt(std::string_view text, const std::string& name) {
  std::vector<MergeRule> merges;
  std::size_t line_number = 0;
  while (!text.empty()) {
    const std::size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_number == 1 && line.starts_with("#version"))) continue;
    merges.push_back(split_merge(line, name + " line " + std::to_string(line_number)));
  }
  return merges;
}

/// model.merges: "a b" strings (tokenizers before 0.20) or ["a", "b"] pairs.
inline std::vector<MergeRule> read_merges_json(const nlohmann::json& list, const std::string& name) {
  require(list.is_array(), name + ": model.merges is missing or not a list");
  std::vector<MergeRule> merges;
  merges.reserve(list.size());
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string where = name + ": model.merges[" + std::to_string(i) + "]";
    const auto& m = list[i];
    if (m.is_string()) {
      merges.push_back(split_merge(m.get<std::string>(), where));
    } else {
      require(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), where + " is neither \"a b\" nor [\"a\", \"b\"]");
      merges.push_back({m[0].get<std::string>(), m[1].get<std::string>(), where});
    }
  }
  return merges;
}

/// A ByteLevel pre-tokenizer's options, checked: its use_regex (true when absent).
inline bool byte_level_use_regex(const nlohmann::json& b, const std::string& name) {
  require(!bool_field(b, "add_prefix_space", false, name + ": the ByteLevel pre_tokenizer"),
          name + ": the ByteLevel pre_tokenizer has add_prefix_space true; circuitry's byte-level tokenizers add no prefix space");
  return bool_field(b, "use_regex", true, name + ": the ByteLevel pre_tokenizer");
}

/// The pre_tokenizer: ByteLevel(use_regex), Sequence [Split(known pattern), ByteLevel] or
/// Sequence [Digits(individual_digits), ByteLevel(use_regex)].
inline PreTokenizer read_pre_tokenizer(const nlohmann::json& pre, const std::string& name) {
  const std::string unsupported = name + ": the pre_tokenizer " + component_name(pre) +
                                  " is not supported (circuitry knows ByteLevel, Sequence [Split, ByteLevel] with the"
                                  " patterns of GPT-2, Llama 3 and Qwen2, and Sequence [Digits, ByteLevel])";
  const std::string type = string_field(pre, "type");
  if (type == "ByteLevel") {
    require(byte_level_use_regex(pre, name), name + ": the ByteLevel pre_tokenizer has use_regex false and no Split before it, "
                                                    "so it would not cut the text into words; not supported");
    return PreTokenizer::gpt2;
  }
  const auto& parts = field(pre, "pretokenizers");
  if (type == "Sequence" && parts.is_array() && parts.size() == 2 && string_field(parts[0], "type") == "Digits" &&
      string_field(parts[1], "type") == "ByteLevel") {
    require(bool_field(parts[0], "individual_digits", false, name + ": the Digits pre_tokenizer"),
            name + ": the Digits pre_tokenizer has individual_digits false (runs of digits kept whole); circuitry knows "
                   "individual_digits true (StarCoder2, SmolLM)");
    require(byte_level_use_regex(parts[1], name), name + ": the ByteLevel pre_tokenizer after Digits has use_regex false; "
                                                         "circuitry knows it with use_regex true (GPT-2's pattern)");
    return PreTokenizer::digits_then_gpt2;
  }
  require(type == "Sequence" && parts.is_array() && parts.size() == 2 && string_field(parts[0], "type") == "Split" &&
              string_field(parts[1], "type") == "ByteLevel",
          unsupported);
  const auto& split = parts[0];
  require(!byte_level_use_regex(parts[1], name),
          name + ": the pre_tokenizer splits twice (a Split, then ByteLevel with use_regex true); not supported");
  const std::string behavior = string_field(split, "behavior");
  const bool invert = bool_field(split, "invert", false, name + ": the Split pre_tokenizer");
  require(behavior == "Isolated" && !invert, name + ": the Split pre_tokenizer has behavior " +
                                                 (behavior.empty() ? field(split, "behavior").dump() : behavior) +
                                                 (invert ? " and invert true" : "") +
                                                 "; circuitry knows behavior Isolated, invert false (each match a word)");
  const auto& pattern = field(split, "pattern");
  require(pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string(),
          name + ": the Split pre_tokenizer's pattern " + pattern.dump() + " is not a {\"Regex\": ...}");
  const std::string regex = pattern["Regex"].get<std::string>();
  const auto known = pre_tokenizer_of_pattern(regex);
  require(known.has_value(), name + ": unknown Split pattern " + nlohmann::json(regex).dump() +
                                 "; circuitry knows those of GPT-2, Llama 3 and Qwen2, character for character");
  return *known;
}

inline Normalizer read_normalizer(const nlohmann::json& n, const std::string& name) {
  const auto& parts = field(n, "normalizers");  // an empty Sequence (SmolLM2's) normalizes nothing
  if (n.is_null() || (string_field(n, "type") == "Sequence" && parts.is_array() && parts.empty())) return Normalizer::none;
  require(string_field(n, "type") == "NFC",
          name + ": the normalizer " + component_name(n) + " is not supported (circuitry knows null, an empty Sequence and NFC)");
  return Normalizer::nfc;
}

inline std::vector<AddedToken> read_added_tokens(const nlohmann::json& list, const std::string& name) {
  std::vector<AddedToken> added;
  if (list.is_null()) return added;
  require(list.is_array(), name + ": added_tokens is not a list");
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string where = name + ": added_tokens[" + std::to_string(i) + "]";
    const auto& t = list[i];
    require(t.is_object() && t.contains("content") && t["content"].is_string() && t.contains("id") &&
                t["id"].is_number_integer() && t["id"].get<long long>() >= 0 && t["id"].get<long long>() <= (1 << 30),
            where + " is not {\"id\": integer, \"content\": string, ...}");
    AddedToken token;
    token.content = t["content"].get<std::string>();
    token.id = int(t["id"].get<long long>());
    token.special = bool_field(t, "special", false, where);
    token.normalized = bool_field(t, "normalized", !token.special, where);  // tokenizers' AddedToken::from(content, special)
    for (const char* flag : {"lstrip", "rstrip", "single_word"})
      require(!bool_field(t, flag, false, where), where + " ('" + token.content + "') has " + flag +
                                                      " true; circuitry matches added tokens exactly (lstrip, rstrip and single_word false)");
    if (token.content.empty()) continue;  // tokenizers ignores an empty added token
    added.push_back(std::move(token));
  }
  return added;
}

/// The model part of a tokenizer.json: BPE with its vocab, merges and options.
inline void read_bpe_model(const nlohmann::json& model, const std::string& name, ByteLevelBpeConfig& config) {
  // tokenizers reads a model without "type" by its fields
  const std::string type = !model.contains("type") ? "BPE" : model["type"].is_string() ? model["type"].get<std::string>()
                                                                                        : model["type"].dump();
  require(type == "BPE", name + ": the model is " + type + ", not BPE (circuitry reads byte-level BPE tokenizers)");
  const auto& dropout = field(model, "dropout");
  require(dropout.is_null() || dropout == 0,
          name + ": model.dropout is " + dropout.dump() + "; BPE dropout makes encoding random, circuitry's is exact");
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto& a = field(model, affix);
    require(a.is_null() || a == "", name + ": model." + affix + " is " + a.dump() +
                                        "; byte-level BPE has none (this is a word-level BPE, which circuitry does not read)");
  }
  config.ignore_merges = bool_field(model, "ignore_merges", false, name + ": model");
  require(model.contains("vocab"), name + ": model.vocab is missing");
  config.vocab = read_vocab(model["vocab"], name + ": model.vocab");
  require(model.contains("merges"), name + ": model.merges is missing or not a list");
  config.merges = read_merges_json(model["merges"], name);
}

}  // namespace detail

/// GPT-2's vocab.json + merges.txt, from their contents; names for errors.
inline ByteLevelBpeConfig read_vocab_and_merges(std::string_view vocab_json, std::string_view merges_txt,
                                                const std::string& vocab_name, const std::string& merges_name) {
  ByteLevelBpeConfig config;
  config.vocab = detail::read_vocab(io::parse_json(vocab_json, vocab_name), vocab_name);
  config.merges = detail::read_merges_txt(merges_txt, merges_name);
  config.vocab_name = config.added_name = vocab_name;
  config.merges_name = merges_name;
  for (const auto& [token, id] : config.vocab)  // GPT2TokenizerFast's one special token
    if (token == "<|endoftext|>") config.added.push_back({token, id, true, false});
  require(!config.added.empty(), vocab_name + ": no <|endoftext|> token (not a GPT-2 vocabulary)");
  return config;
}

/// A Hugging Face tokenizer.json, parsed; `name` names it in errors.
inline ByteLevelBpeConfig read_tokenizer_json_object(const nlohmann::json& j, const std::string& name) {
  require(j.is_object() && j.contains("model") && j["model"].is_object(),
          name + ": no \"model\" object (not a Hugging Face tokenizer.json)");
  detail::refuse_sentencepiece(j, name);
  ByteLevelBpeConfig config;
  detail::read_bpe_model(j["model"], name, config);
  config.normalizer = detail::read_normalizer(detail::field(j, "normalizer"), name);
  config.pre_tokenizer = detail::read_pre_tokenizer(detail::field(j, "pre_tokenizer"), name);
  config.added = detail::read_added_tokens(detail::field(j, "added_tokens"), name);
  config.vocab_name = name + ": model.vocab";
  config.merges_name = name;
  config.added_name = name + ": added_tokens";
  return config;
}

/// The same from the file's contents.
inline ByteLevelBpeConfig read_tokenizer_json(std::string_view text, const std::string& name) {
  return read_tokenizer_json_object(io::parse_json(text, name), name);
}

/// Whether dir holds a tokenizer: tokenizer.json, vocab.json + merges.txt, or a SentencePiece
/// tokenizer.model (which load_tokenizer.hpp reads; read_tokenizer_directory refuses it).
inline bool directory_has_tokenizer(const std::filesystem::path& dir) {
  std::error_code ec;
  return std::filesystem::exists(dir / "tokenizer.json", ec) ||
         (std::filesystem::exists(dir / "vocab.json", ec) && std::filesystem::exists(dir / "merges.txt", ec)) ||
         std::filesystem::exists(dir / "tokenizer.model", ec);
}

/// dir/tokenizer.json, else dir/vocab.json + dir/merges.txt. (A Hugging Face GPT-2 directory has
/// both, which agree; Pythia's and the others' have only tokenizer.json, or a vocab.json that
/// alone misses their normalizer and added tokens.)
inline ByteLevelBpeConfig read_tokenizer_directory(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::exists(dir / "tokenizer.json", ec))
    return read_tokenizer_json(io::read_regular_file(dir / "tokenizer.json"), (dir / "tokenizer.json").string());
  if (std::filesystem::exists(dir / "vocab.json", ec) && std::filesystem::exists(dir / "merges.txt", ec))
    return read_vocab_and_merges(io::read_regular_file(dir / "vocab.json"), io::read_regular_file(dir / "merges.txt"),
                                 (dir / "vocab.json").string(), (dir / "merges.txt").string());
  if (std::filesystem::exists(dir / "tokenizer.model", ec))
    throw Error((dir / "tokenizer.model").string() + ": a SentencePiece model file and no tokenizer.json, not byte-level BPE; "
                "load it with text::load_tokenizer (load_tokenizer.hpp), which reads SentencePiece models");
  throw Error(dir.string() + ": no tokenizer here (expected tokenizer.json, or vocab.json + merges.txt)");
}

}  // namespace circuitry::text
