#pragma once
// Byte-level BPE tokenizers (Radford et al. 2019, openai/gpt-2 src/encoder.py): GPT-2's, and the
// Hugging Face tokenizer.json files of Pythia (GPT-NeoX), Llama 3, Qwen2 and SmolLM2, id for id the same
// as Hugging Face tokenizers' encode(text, add_special_tokens=False) (and, for GPT-2, tiktoken's
// "gpt2" encoding). The files are read by bpe_config.hpp.
//
// Encoding a text takes five steps:
//   1. Added tokens in the raw text. The added tokens that are not "normalized" (the special
//      ones: <|endoftext|>, Llama 3's <|begin_of_text|>, Qwen2's <|im_start|>) are found in the
//      text first, leftmost-longest (added_tokens.hpp); each is its token and the text between is
//      encoded piece by piece. (GPT2TokenizerFast and tiktoken with allowed_special="all" agree.)
//   2. Normalization of each piece: NFC for Pythia and Qwen2 (nfc.hpp), none for GPT-2 and Llama 3.
//      Then the "normalized" added tokens (GPT-NeoX's runs of 2 to 24 spaces) are found in the
//      normalized piece the same way (tokenizer/added_vocabulary.rs, extract_and_normalize).
//   3. Pre-tokenization: each remaining piece is cut into words by the model's pattern, GPT-2's,
//      Llama 3's, Qwen2's or SmolLM2's (pretokenizer.hpp). BPE never merges across two words.
//   4. Bytes. Every word is a sequence of UTF-8 bytes, each starting as its own symbol. (encoder.py
//      and Hugging Face map each byte to a printable character first, bytes_to_unicode(), so that
//      vocab.json and merges.txt are text; we map the files back to bytes once, at load time.)
//   5. Merges. The merge list holds pairs of symbols in the order they were learned. Repeatedly
//      merge the adjacent pair with the lowest rank (the leftmost if it occurs twice) until no
//      adjacent pair is in the list; each final symbol is a token of the vocabulary. With
//      ignore_merges (Llama 3), a word that is itself a token is that token, without merging
//      (tokenizers' models/bpe/model.rs, tokenize_with_cache). The merging is bpe_merge.hpp.
//
// Speed. Most words are themselves one token; a hash map from a word's bytes to its token
// (word_map.hpp) answers those without running BPE (only for the tokens that BPE really produces
// from their own bytes, so the answer is always what the merges give; with ignore_merges, for
// every token). Other words are merged in place in a small buffer; a long word (a run of digits,
// of spaces) uses a heap so it costs O(n log n), not O(n^2). Encoding allocates nothing per word,
// and the tokenizer holds no mutable state: it can be shared by threads.
#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "circuitry/core/error.hpp"
#include "circuitry/io/read_file.hpp"
#include "circuitry/text/added_tokens.hpp"
#include "circuitry/text/bpe_config.hpp"
#include "circuitry/text/bpe_merge.hpp"
#include "circuitry/text/nfc.hpp"
#include "circuitry/text/pretokenizer.hpp"
#include "circuitry/text/tokenizer.hpp"
#include "circuitry/text/utf8.hpp"
#include "circuitry/text/word_map.hpp"

namespace circuitry::text {

/// GPT-2's bytes_to_unicode() (encoder.py): byte b -> the code point that stands for it in
/// vocab.json and merges.txt. Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
/// themselves; the other 68 (controls, space, soft hyphen) are shifted to U+0100 upwards in byte
/// order, so a space is 'Ġ' (U+0120) and a newline 'Ċ' (U+010A).
inline std::array<char32_t, 256> bytes_to_unicode() {
  std::array<char32_t, 256> map{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    map[std::size_t(b)] = printable ? char32_t(b) : next++;
  }
  return map;
}

/// A byte-level BPE tokenizer (the steps above), immutable once built.
class ByteLevelBpeTokenizer final : public Tokenizer {
 public:
  /// GPT-2's vocab.json + merges.txt.
  static ByteLevelBpeTokenizer from_files(const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt) {
    return ByteLevelBpeTokenizer(read_vocab_and_merges(io::read_regular_file(vocab_json), io::read_regular_file(merges_txt),
                                                       vocab_json.string(), merges_txt.string()));
  }

  /// The same from the files' contents; `origin` names them in errors ("vocab.json of <origin>").
  static ByteLevelBpeTokenizer from_strings(std::string_view vocab_json, std::string_view merges_txt, const std::string& origin) {
    return ByteLevelBpeTokenizer(read_vocab_and_merges(vocab_json, merges_txt, "vocab.json of " + origin, "merges.txt of " + origin));
  }

  /// dir/tokenizer.json, else dir/vocab.json + dir/merges.txt.
  static ByteLevelBpeTokenizer from_directory(const std::filesystem::path& dir) {
    return ByteLevelBpeTokenizer(read_tokenizer_directory(dir));
  }

  static bool directory_has_tokenizer(const std::filesystem::path& dir) { return text::directory_has_tokenizer(dir); }

  /// Checks the config (ids 0..n-1 each once, every merge's symbols in the vocabulary, added
  /// tokens that the vocabulary also has the same tokens there); an Error names the file
  /// otherwise. A vocabulary may lack byte tokens (SmolLM2's lacks 21 of the 256): encoding a
  /// text that needs one is then an Error naming the byte. (Hugging Face tokenizers drops such a
  /// byte without a word; llama.cpp looks it up and skips it; circuitry's ids would not be the
  /// model's either way.)
  explicit ByteLevelBpeTokenizer(const ByteLevelBpeConfig& config);

  /// The token ids of a UTF-8 text, added tokens included where their text occurs.
  /// Throws on invalid UTF-8, naming the byte offset.
  std::vector<int> encode(std::string_view utf8) const override {
    detail::require_utf8(utf8);
    std::vector<int> ids;
    ids.reserve(utf8.size() / 3 + 4);
    std::string normalized;
    raw_added_.split(utf8, [&](std::string_view piece, int added) {
      if (added >= 0) return ids.push_back(added);
      if (normalizer_ == Normalizer::nfc && !nfc_unchanged(piece)) {
        normalized.clear();
        append_nfc(piece, normalized);
        piece = normalized;
      }
      normalized_added_.split(piece, [&](std::string_view part, int added_after_normalization) {
        if (added_after_normalization >= 0) return ids.push_back(added_after_normalization);
        for_each_pretoken(pre_tokenizer_, part, [&](std::string_view word) { encode_word(word, ids); });
      });
    });
    return ids;
  }

  /// The bytes the ids stand for, concatenated (tiktoken's decode_bytes; a cut through a
  /// multi-byte character stays as its bytes). Throws on an id out of range.
  std::string decode(const std::vector<int>& ids) const override {
    std::string out;
    for (const int id : ids) {
      check_id(id);
      out.append(token_bytes(id));
    }
    return out;
  }

  /// The bytes of one token (an added token's content for an added token).
  std::string token_text(int id) const override {
    check_id(id);
    return std::string(token_bytes(id));
  }

  std::size_t vocab_size() const override { return offsets_.size() - 1; }

 private:

  void check_id(int id) const {
    require(id >= 0 && std::size_t(id) < vocab_size(),
            "token id " + std::to_string(id) + " is out of range (the vocabulary has " + std::to_string(vocab_size()) + " tokens)");
  }

  std::string_view token_bytes(int id) const {
    return std::string_view(bytes_).substr(offsets_[std::size_t(id)], offsets_[std::size_t(id) + 1] - offsets_[std::size_t(id)]);
  }

  void encode_word(std::string_view word, std::vector<int>& out) const {
    if (word.size() == 1 && byte_id_[static_cast<unsigned char>(word[0])] >= 0) {
      out.push_back(byte_id_[static_cast<unsigned char>(word[0])]);
      return;
    }
    if (const int id = words_.find(word); id >= 0) {
      out.push_back(id);
      return;
    }
    if (!has_every_byte_) require_byte_tokens(word);
    detail::bpe(word, byte_id_, merges_, out);
  }

  /// The first byte of `bytes` that has no token, or -1.
  int missing_byte(std::string_view bytes) const {
    for (const char c : bytes)
      if (byte_id_[static_cast<unsigned char>(c)] < 0) return static_cast<unsigned char>(c);
    return -1;
  }

  void require_byte_tokens(std::string_view word) const {
    const int b = missing_byte(word);
    if (b < 0) return;
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", unsigned(b));
    std::string spelled;
    detail::append_utf8(spelled, bytes_to_unicode()[std::size_t(b)]);
    throw Error(vocab_name_ + ": the text needs byte " + hex + " (spelled '" + spelled +
                "'), and the vocabulary has no token for it, so this model cannot read the text (remove or replace the character)");
  }

  std::string bytes_;                  // every token's bytes, concatenated
  std::vector<std::uint32_t> offsets_;  // token id -> its bytes in bytes_, [offsets_[id], offsets_[id + 1])
  std::array<int, 256> byte_id_{};  // -1 for a byte the vocabulary has no token for
  bool has_every_byte_ = true;
  std::string vocab_name_;
  detail::PairMap merges_;
  detail::WordMap words_;
  AddedTokenMatcher raw_added_, normalized_added_;
  Normalizer normalizer_ = Normalizer::none;
  PreTokenizer pre_tokenizer_ = PreTokenizer::gpt2;
};

/// The name this tokenizer had when it read GPT-2's files only (kept for code written against it).
using Gpt2Tokenizer = ByteLevelBpeTokenizer;

inline ByteLevelBpeTokenizer::ByteLevelBpeTokenizer(const ByteLevelBpeConfig& config)
    : vocab_name_(config.vocab_name), normalizer_(config.normalizer), pre_tokenizer_(config.pre_tokenizer) {
  const std::string& vocab_name = config.vocab_name;
  // The vocabulary's spellings back to bytes (the inverse of bytes_to_unicode). A spelling with a
  // character outside that alphabet (GPT-NeoX's runs of plain spaces, which are also added
  // tokens) can never come out of BPE; like tokenizers' ByteLevel decoder we take its UTF-8 as
  // its bytes.
  std::array<int, 0x144> byte_of;  // bytes_to_unicode reaches U+0143
  byte_of.fill(-1);
  const auto map = bytes_to_unicode();
  for (int b = 0; b < 256; ++b) byte_of[map[std::size_t(b)]] = b;
  auto to_bytes = [&](const std::string& token, std::string& bytes) {  // false if not in the alphabet
    bytes.clear();
    const auto* p = reinterpret_cast<const unsigned char*>(token.data());
    const auto* end = p + token.size();
    for (std::size_t len = 0; p < end; p += len) {
      const std::uint32_t cp = detail::code_point_at(p, len);
      if (cp >= byte_of.size() || byte_of[cp] < 0) return false;
      bytes.push_back(char(byte_of[cp]));
    }
    return true;
  };
  std::string bytes;
  auto bytes_of = [&](const std::string& spelling) -> const std::string& {
    return to_bytes(spelling, bytes) ? bytes : spelling;
  };

  // Every id is a vocabulary token, an added token, or both (then the same token); the ids are
  // 0..n-1, each once.
  auto twice = [](const std::string& name, int id, const std::string& a, const std::string& b) {
    return Error(name + ": id " + std::to_string(id) + " is given to two tokens ('" + a + "' and '" + b +
                 "'); ids must be 0..n-1, each once");
  };
  std::unordered_map<int, const std::string*> spelling_of;
  for (const auto& [token, id] : config.vocab)
    if (const auto [it, fresh] = spelling_of.emplace(id, &token); !fresh) throw twice(vocab_name, id, *it->second, token);
  std::size_t n = config.vocab.size();
  std::unordered_map<int, const std::string*> content_of;
  std::unordered_set<std::string_view> contents;
  for (const AddedToken& t : config.added) {
    require(contents.insert(t.content).second, config.added_name + ": the token '" + t.content + "' is listed twice");
    if (const auto [it, fresh] = content_of.emplace(t.id, &t.content); !fresh) throw twice(config.added_name, t.id, *it->second, t.content);
    if (const auto it = spelling_of.find(t.id); it == spelling_of.end()) ++n;
    else
      require(bytes_of(*it->second) == t.content, config.added_name + ": the token '" + t.content + "' has id " +
                                                      std::to_string(t.id) + ", which " + vocab_name + " gives to '" +
                                                      *it->second + "'");
  }
  auto in_range = [&](int id, const std::string& text, const std::string& name) {
    require(std::size_t(id) < n, name + ": token '" + text + "' has id " + std::to_string(id) + "; the ids of " +
                                     std::to_string(n) + " tokens must be 0.." + std::to_string(n - 1));
  };
  for (const auto& [token, id] : config.vocab) in_range(id, token, vocab_name);
  for (const AddedToken& t : config.added) in_range(t.id, t.content, config.added_name);

  // Each token's bytes; the vocabulary's spellings by id, for the merges.
  std::unordered_map<std::string, int> id_of;
  std::vector<bool> byte_level(n, false);  // whether the token is spelled in the alphabet (BPE can make it)
  offsets_.push_back(0);
  for (std::size_t id = 0; id < n; ++id) {
    if (const auto it = spelling_of.find(int(id)); it != spelling_of.end()) {
      id_of.emplace(*it->second, int(id));
      byte_level[id] = to_bytes(*it->second, bytes);
      bytes_.append(byte_level[id] ? bytes : *it->second);
    } else {
      bytes_.append(*content_of.at(int(id)));
    }
    offsets_.push_back(std::uint32_t(bytes_.size()));
  }
  for (int b = 0; b < 256; ++b) {
    std::string spelled;
    detail::append_utf8(spelled, map[std::size_t(b)]);
    const auto it = id_of.find(spelled);
    byte_id_[std::size_t(b)] = it == id_of.end() ? -1 : it->second;
    has_every_byte_ = has_every_byte_ && it != id_of.end();
  }

  require(!config.merges.empty(), config.merges_name + ": no merges (a byte-level BPE lists its merges, pairs 'a b', by rank)");
  merges_.reserve(config.merges.size());
  for (std::size_t rank = 0; rank < config.merges.size(); ++rank) {
    const MergeRule& m = config.merges[rank];
    auto id = [&](const std::string& symbol) {
      const auto it = id_of.find(symbol);
      require(it != id_of.end(), m.where + ": symbol '" + symbol + "' is not in " + vocab_name);
      require(byte_level[std::size_t(it->second)],
              m.where + ": symbol '" + symbol + "' is not spelled in the byte-level alphabet, so no merge can make it");
      return it->second;
    };
    merges_.set(id(m.left), id(m.right), detail::Merge{int(rank), id(m.left + m.right)});
  }

  // The words that are one token: every token that BPE gives back whole from its own bytes; with
  // ignore_merges every token of the vocabulary.
  std::vector<std::pair<std::string_view, int>> whole;
  std::vector<int> ids;
  for (std::size_t id = 0; id < n; ++id) {
    if (!byte_level[id]) continue;
    const std::string_view b = token_bytes(int(id));
    if (!config.ignore_merges && missing_byte(b) >= 0) continue;  // BPE cannot start from its bytes
    ids.clear();
    if (!config.ignore_merges) detail::bpe(b, byte_id_, merges_, ids);
    if (config.ignore_merges || (ids.size() == 1 && ids[0] == int(id))) whole.emplace_back(b, int(id));
  }
  words_.build(whole);

  for (const AddedToken& t : config.added) {
    if (!t.normalized) {
      raw_added_.add(t.content, t.id);
    } else if (normalizer_ == Normalizer::nfc) {  // found in the normalized text as its own NFC
      std::string nfc;
      append_nfc(t.content, nfc);
      normalized_added_.add(nfc, t.id);
    } else {
      normalized_added_.add(t.content, t.id);
    }
  }
}

}  // namespace circuitry::text
