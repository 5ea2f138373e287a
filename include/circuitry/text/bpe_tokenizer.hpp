#pragma once
// Byte-level BPE tokenizers (Radford et al. 2019, openai/gpt-2 src/encoder.py): GPT-2's, and the
// Hugging Face tokenizer.json files of Pythia (GPT-NeoX), Llama 3 and Qwen2, id for id the same
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
//      Llama 3's or Qwen2's (pretokenizer.hpp). BPE never merges across two words.
//   4. Bytes. Every word is a sequence of UTF-8 bytes, each starting as its own symbol. (encoder.py
//      and Hugging Face map each byte to a printable character first, bytes_to_unicode(), so that
//      vocab.json and merges.txt are text; we map the files back to bytes once, at load time.)
//   5. Merges. The merge list holds pairs of symbols in the order they were learned. Repeatedly
//      merge the adjacent pair with the lowest rank (the leftmost if it occurs twice) until no
//      adjacent pair is in the list; each final symbol is a token of the vocabulary. With
//      ignore_merges (Llama 3), a word that is itself a token is that token, without merging
//      (tokenizers' models/bpe/model.rs, tokenize_with_cache).
//
// Speed. Most words are themselves one token; a hash map from a word's bytes to its token answers
// those without running BPE (only for the tokens that BPE really produces from their own bytes,
// so the answer is always what the merges give; with ignore_merges, for every token). Other words
// are merged in place in a small buffer; a long word (a run of digits, of spaces) uses a heap so it
// costs O(n log n), not O(n^2). Encoding allocates nothing per word, and the tokenizer holds no
// mutable state: it can be shared by threads.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <queue>
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
#include "circuitry/text/nfc.hpp"
#include "circuitry/text/pretokenizer.hpp"
#include "circuitry/text/utf8.hpp"

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

namespace detail {

/// A fast hash of a short byte string (words are a few bytes): eight bytes at a time.
inline std::uint64_t hash_bytes(std::string_view s) {
  std::uint64_t h = 0x9E3779B97F4A7C15ull * (s.size() + 1);
  const char* p = s.data();
  std::size_t n = s.size();
  auto mix = [&](std::uint64_t x) {
    h = (h ^ x) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  };
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t x;
    std::memcpy(&x, p, 8);
    mix(x);
  }
  if (n > 0) {
    std::uint64_t x = 0;
    std::memcpy(&x, p, n);
    mix(x);
  }
  return h;
}

/// Open-addressing map from byte strings to token ids, keys stored in one buffer.
class WordMap {
 public:
  void build(const std::vector<std::pair<std::string_view, int>>& entries) {
    std::size_t capacity = 16;
    while (capacity < 2 * entries.size()) capacity *= 2;
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    for (const auto& [word, id] : entries) {
      const std::uint64_t h = hash_bytes(word);
      std::size_t i = h & mask_;
      while (slots_[i].id >= 0) i = (i + 1) & mask_;
      slots_[i] = Slot{std::uint32_t(h >> 32), std::uint32_t(keys_.size()), std::uint32_t(word.size()), id};
      keys_.append(word);
    }
  }
  /// The id of word, or -1.
  int find(std::string_view word) const {
    const std::uint64_t h = hash_bytes(word);
    const auto tag = std::uint32_t(h >> 32);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.id < 0) return -1;
      if (s.tag == tag && s.length == word.size() && std::memcmp(keys_.data() + s.offset, word.data(), word.size()) == 0)
        return s.id;
    }
  }

 private:
  struct Slot {
    std::uint32_t tag = 0, offset = 0, length = 0;
    int id = -1;
  };
  std::vector<Slot> slots_;
  std::string keys_;
  std::size_t mask_ = 0;
};

/// What merging a pair gives: its rank in merges.txt and the merged token.
struct Merge {
  int rank = std::numeric_limits<int>::max();
  int id = -1;
};

/// Open-addressing map from a pair of token ids to its Merge.
class PairMap {
 public:
  void reserve(std::size_t n) {
    std::size_t capacity = 16;
    bits_ = 4;
    while (capacity < 2 * n) capacity *= 2, ++bits_;
    slots_.assign(capacity, Slot{});
  }
  /// Inserts or replaces (a later line of merges.txt wins, as in Hugging Face's BPE).
  void set(int a, int b, Merge m) {
    const std::uint64_t key = pack(a, b);
    std::size_t i = index(key);
    while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & (slots_.size() - 1);
    slots_[i] = Slot{key, m};
  }
  Merge find(int a, int b) const {
    const std::uint64_t key = pack(a, b);
    for (std::size_t i = index(key);; i = (i + 1) & (slots_.size() - 1)) {
      if (slots_[i].key == key) return slots_[i].merge;
      if (slots_[i].key == kEmpty) return Merge{};
    }
  }

 private:
  static constexpr std::uint64_t kEmpty = ~0ull;
  struct Slot {
    std::uint64_t key = kEmpty;
    Merge merge;
  };
  static std::uint64_t pack(int a, int b) { return (std::uint64_t(std::uint32_t(a)) << 32) | std::uint32_t(b); }
  std::size_t index(std::uint64_t key) const { return std::size_t((key * 0x9E3779B97F4A7C15ull) >> (64 - bits_)); }
  std::vector<Slot> slots_;
  int bits_ = 4;
};

}  // namespace detail

/// A byte-level BPE tokenizer (the steps above), immutable once built.
class ByteLevelBpeTokenizer {
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

  /// Checks the config (ids 0..n-1 each once, all 256 byte tokens, every merge's symbols in the
  /// vocabulary, added tokens that the vocabulary also has the same tokens there); an Error names
  /// the file otherwise.
  explicit ByteLevelBpeTokenizer(const ByteLevelBpeConfig& config);

  /// The token ids of a UTF-8 text, added tokens included where their text occurs.
  /// Throws on invalid UTF-8, naming the byte offset.
  std::vector<int> encode(std::string_view utf8) const {
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
  std::string decode(const std::vector<int>& ids) const {
    std::string out;
    for (const int id : ids) {
      check_id(id);
      out.append(token_bytes(id));
    }
    return out;
  }

  /// The bytes of one token (an added token's content for an added token).
  std::string token_text(int id) const {
    check_id(id);
    return std::string(token_bytes(id));
  }

  std::size_t vocab_size() const { return offsets_.size() - 1; }

 private:
  static constexpr std::size_t kShortWord = 64;

  void check_id(int id) const {
    require(id >= 0 && std::size_t(id) < vocab_size(),
            "token id " + std::to_string(id) + " is out of range (the vocabulary has " + std::to_string(vocab_size()) + " tokens)");
  }

  std::string_view token_bytes(int id) const {
    return std::string_view(bytes_).substr(offsets_[std::size_t(id)], offsets_[std::size_t(id) + 1] - offsets_[std::size_t(id)]);
  }

  void encode_word(std::string_view word, std::vector<int>& out) const {
    if (word.size() == 1) {
      out.push_back(byte_id_[static_cast<unsigned char>(word[0])]);
      return;
    }
    if (const int id = words_.find(word); id >= 0) {
      out.push_back(id);
      return;
    }
    bpe(word, out);
  }

  /// Appends BPE(word) to out: merge the lowest-ranked adjacent pair until none is left.
  void bpe(std::string_view word, std::vector<int>& out) const {
    if (word.size() > kShortWord) return bpe_long(word, out);
    // Short words in place: ids[i] the symbols, next[i] what merging ids[i], ids[i+1] gives.
    std::array<int, kShortWord> ids;
    std::array<detail::Merge, kShortWord> next;
    std::size_t n = word.size();
    for (std::size_t i = 0; i < n; ++i) ids[i] = byte_id_[static_cast<unsigned char>(word[i])];
    for (std::size_t i = 0; i + 1 < n; ++i) next[i] = merges_.find(ids[i], ids[i + 1]);
    while (n > 1) {
      std::size_t best = 0;
      for (std::size_t i = 1; i + 1 < n; ++i)
        if (next[i].rank < next[best].rank) best = i;
      if (next[best].id < 0) break;
      ids[best] = next[best].id;
      std::copy(ids.begin() + std::ptrdiff_t(best) + 2, ids.begin() + std::ptrdiff_t(n), ids.begin() + std::ptrdiff_t(best) + 1);
      if (best + 2 < n)  // the pairs after the merged one move left too
        std::copy(next.begin() + std::ptrdiff_t(best) + 2, next.begin() + std::ptrdiff_t(n) - 1, next.begin() + std::ptrdiff_t(best) + 1);
      --n;
      if (best > 0) next[best - 1] = merges_.find(ids[best - 1], ids[best]);
      if (best + 1 < n) next[best] = merges_.find(ids[best], ids[best + 1]);
    }
    out.insert(out.end(), ids.begin(), ids.begin() + std::ptrdiff_t(n));
  }

  /// The same for a long word, as Hugging Face's Word::merge_all does it: the symbols in a
  /// linked list, candidate merges in a min-heap by (rank, position), stale ones skipped.
  void bpe_long(std::string_view word, std::vector<int>& out) const {
    const std::size_t n = word.size();
    std::vector<int> ids(n), prev(n), next(n);
    for (std::size_t i = 0; i < n; ++i)
      ids[i] = byte_id_[static_cast<unsigned char>(word[i])], prev[i] = int(i) - 1, next[i] = i + 1 < n ? int(i) + 1 : -1;
    using Candidate = std::pair<int, int>;  // (rank, position of the left symbol)
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
    auto push = [&](int left) {
      if (left < 0 || next[std::size_t(left)] < 0) return;
      const detail::Merge m = merges_.find(ids[std::size_t(left)], ids[std::size_t(next[std::size_t(left)])]);
      if (m.id >= 0) heap.emplace(m.rank, left);
    };
    for (std::size_t i = 0; i + 1 < n; ++i) push(int(i));
    while (!heap.empty()) {
      const auto [rank, left] = heap.top();
      heap.pop();
      const auto l = std::size_t(left);
      if (ids[l] < 0 || next[l] < 0) continue;  // merged away since
      const auto r = std::size_t(next[l]);
      const detail::Merge m = merges_.find(ids[l], ids[r]);
      if (m.rank != rank) continue;  // this pair changed since it was pushed
      ids[l] = m.id;
      ids[r] = -1;
      next[l] = next[r];
      if (next[r] >= 0) prev[std::size_t(next[r])] = left;
      push(prev[l]);
      push(left);
    }
    for (int i = 0; i >= 0; i = next[std::size_t(i)]) out.push_back(ids[std::size_t(i)]);
  }

  std::string bytes_;                  // every token's bytes, concatenated
  std::vector<std::uint32_t> offsets_;  // token id -> its bytes in bytes_, [offsets_[id], offsets_[id + 1])
  std::array<int, 256> byte_id_{};
  detail::PairMap merges_;
  detail::WordMap words_;
  AddedTokenMatcher raw_added_, normalized_added_;
  Normalizer normalizer_ = Normalizer::none;
  PreTokenizer pre_tokenizer_ = PreTokenizer::gpt2;
};

/// The name this tokenizer had when it read GPT-2's files only (kept for code written against it).
using Gpt2Tokenizer = ByteLevelBpeTokenizer;

inline ByteLevelBpeTokenizer::ByteLevelBpeTokenizer(const ByteLevelBpeConfig& config)
    : normalizer_(config.normalizer), pre_tokenizer_(config.pre_tokenizer) {
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
    require(it != id_of.end(), vocab_name + ": no token for byte " + std::to_string(b) + " ('" + spelled +
                                   "'); a byte-level vocabulary has all 256 byte tokens");
    byte_id_[std::size_t(b)] = it->second;
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
    ids.clear();
    if (!config.ignore_merges) bpe(b, ids);
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
