#pragma once
// SentencePiece BPE tokenizers (Kudo and Richardson 2018): Llama 2's, Mistral's and Gemma's, from
// a tokenizer.json (id for id as Hugging Face tokenizers' encode(text, add_special_tokens=False))
// or from a GGUF file's metadata (id for id as llama.cpp's SPM tokenizer, llama-vocab.cpp, which
// gives what the sentencepiece library gives). The files are read by sentencepiece_config.hpp and
// gguf_tokenizer.hpp.
//
// Encoding a text:
//   1. Added tokens in the raw text, as for byte-level BPE (added_tokens.hpp): each is its token
//      and the pieces between are encoded one by one.
//   2. Spaces. Each space becomes '\u2581' (U+2581), and a '\u2581' goes before the piece where the
//      file says so (SpacePrefix: Llama 2 and llama.cpp before the text and after each added
//      token; Metaspace "first" before the text only, and not where it begins with a space;
//      Gemma never). Then "normalized" added tokens are cut out of the result.
//   3. Words: the whole piece, or with Metaspace's split each run that begins at a '\u2581'.
//   4. Symbols: each character of a word is a symbol, its token when the vocabulary has it;
//      otherwise (byte fallback) its UTF-8 bytes, each the token <0xNN>; without byte fallback the
//      unknown token, consecutive ones fused into one with fuse_unk.
//   (A tokenizer.model with remove_extra_whitespaces first drops the spaces at the text's ends and
//   keeps one of each run: sentencepiece_model.hpp.)
//   5. Merges. tokenizer.json: merge the adjacent pair with the lowest rank in the merge list
//      (the leftmost on ties) until none is left, as for byte-level BPE (bpe_merge.hpp); with
//      ignore_merges a word that is a token is that token. GGUF (no merge list): merge the adjacent
//      pair whose concatenation is a token with the highest score (the leftmost on ties) until no
//      pair is a token; a symbol left that is no token (one character) becomes its byte tokens
//      (byte fallback), else the unknown token, a run fused (a tokenizer.model without byte_fallback).
//   A byte token that is needed and missing from the vocabulary, or an unknown character with
//   neither byte fallback nor an unknown token, is an Error naming the character.
// encode_continuation() skips the '\u2581' of step 2 (tokenizer.hpp). decode() and token_text() give
// each token's text with '\u2581' as a space and a byte token as its byte; the space a tokenizer puts
// before the text stays in (Hugging Face's decoder strips it).
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "circuitry/core/error.hpp"
#include "circuitry/text/added_tokens.hpp"
#include "circuitry/text/bpe_merge.hpp"
#include "circuitry/text/sentencepiece_config.hpp"
#include "circuitry/text/tokenizer.hpp"
#include "circuitry/text/utf8.hpp"
#include "circuitry/text/word_map.hpp"

namespace circuitry::text {

class SentencePieceBpeTokenizer final : public Tokenizer {
 public:
  /// Checks the config (ids 0..n-1 each once, merges of vocabulary tokens, the unknown token in
  /// the vocabulary, one score per token, each finite); an Error names the file otherwise.
  explicit SentencePieceBpeTokenizer(const SentencePieceConfig& config);

  std::vector<int> encode(std::string_view utf8) const override { return encode_text(utf8, true); }
  std::vector<int> encode_continuation(std::string_view utf8) const override { return encode_text(utf8, false); }

  std::string decode(const std::vector<int>& ids) const override {
    std::string out;
    for (const int id : ids) out.append(token_text(id));
    return out;
  }

  std::string token_text(int id) const override {
    require(id >= 0 && std::size_t(id) < vocab_size(),
            "token id " + std::to_string(id) + " is out of range (the vocabulary has " + std::to_string(vocab_size()) + " tokens)");
    return text_.substr(offsets_[std::size_t(id)], offsets_[std::size_t(id) + 1] - offsets_[std::size_t(id)]);
  }

  std::size_t vocab_size() const override { return offsets_.size() - 1; }

 private:
  std::vector<int> encode_text(std::string_view text, bool prefix) const {
    detail::require_utf8(text);
    std::string collapsed;  // remove_extra_whitespaces: a text that follows other text keeps its leading space
    if (remove_extra_whitespaces_)
      for (std::size_t i = 0; i < text.size(); ++i)
        if (text[i] != ' ' || (!collapsed.empty() ? collapsed.back() != ' ' : !prefix)) collapsed.push_back(text[i]);
    while (remove_extra_whitespaces_ && (collapsed.ends_with(' ') || collapsed.ends_with(detail::kSpaceMark)))  // '\u2581' too, as sentencepiece
      collapsed.resize(collapsed.size() - (collapsed.back() == ' ' ? 1 : detail::kSpaceMark.size()));
    const std::string_view utf8 = remove_extra_whitespaces_ ? std::string_view(collapsed) : text;
    std::vector<int> ids;
    std::string escaped;
    raw_added_.split(utf8, [&](std::string_view piece, int added) {
      if (added >= 0) return ids.push_back(added);
      bool put = prefix && (prefix_ == SpacePrefix::every_piece || (prefix_ == SpacePrefix::first_piece && piece.data() == utf8.data()));
      if (!prefix_before_space_ && (piece.front() == ' ' || piece.starts_with(detail::kSpaceMark))) put = false;
      escaped.assign(put ? detail::kSpaceMark : std::string_view());
      detail::append_escaped(piece, escaped);
      normalized_added_.split(escaped, [&](std::string_view part, int added_after) {
        if (added_after >= 0) return ids.push_back(added_after);
        if (!split_words_) return encode_word(part, ids);
        for (std::size_t begin = 0; begin < part.size();) {  // each word begins at a '\u2581'
          std::size_t end = part.find(detail::kSpaceMark, begin + 1);
          if (end == std::string_view::npos) end = part.size();
          encode_word(part.substr(begin, end - begin), ids);
          begin = end;
        }
      });
    });
    return ids;
  }

  /// The length in bytes of the character at word[i].
  static std::size_t char_length(std::string_view word, std::size_t i) {
    std::size_t len = 1;
    detail::code_point_at(reinterpret_cast<const unsigned char*>(word.data() + i), len);
    return len;
  }

  /// Appends the byte tokens of `bytes` (one character), or throws naming it.
  void push_bytes(std::string_view bytes, std::vector<int>& out) const {
    for (const char c : bytes) {
      const int id = byte_id_[static_cast<unsigned char>(c)];
      if (id < 0) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02X", unsigned(static_cast<unsigned char>(c)));
        throw Error(vocab_name_ + ": the text has the character '" + std::string(bytes) + "', which the vocabulary has no token for, "
                    "and its byte " + hex + " has no byte token <" + hex + ">, so this model cannot read the text (remove or "
                    "replace the character)");
      }
      out.push_back(id);
    }
  }

  void encode_word(std::string_view word, std::vector<int>& out) const {
    if (scored_) return encode_word_by_score(word, out);
    if (ignore_merges_)
      if (const int id = pieces_.find(word); id >= 0) return out.push_back(id);
    std::vector<int> symbols;
    bool after_unk = false;
    for (std::size_t i = 0, len; i < word.size(); i += len) {
      len = char_length(word, i);
      const std::string_view ch = word.substr(i, len);
      if (const int id = pieces_.find(ch); id >= 0) {
        symbols.push_back(id);
        after_unk = false;
      } else if (byte_fallback_) {
        push_bytes(ch, symbols);
        after_unk = false;
      } else {
        require(unk_id_ >= 0, vocab_name_ + ": the text has the character '" + std::string(ch) +
                                  "', which the vocabulary has no token for, and the tokenizer has neither byte fallback nor "
                                  "an unknown token");
        if (!(after_unk && fuse_unk_)) symbols.push_back(unk_id_);
        after_unk = true;
      }
    }
    detail::merge_symbols(std::move(symbols), merges_, out);
  }

  /// llama.cpp's llm_tokenizer_spm: characters merged by the scores of the tokens they make.
  void encode_word_by_score(std::string_view word, std::vector<int>& out) const {
    struct Symbol {
      std::size_t begin, size;
      int prev, next;
    };
    std::vector<Symbol> symbols;
    for (std::size_t i = 0, len; i < word.size(); i += len) {
      len = char_length(word, i);
      const int n = int(symbols.size());
      symbols.push_back({i, len, n - 1, i + len < word.size() ? n + 1 : -1});
    }
    struct Candidate {
      double score;
      int left;
      std::size_t size;
      bool operator<(const Candidate& o) const { return score < o.score || (score == o.score && left > o.left); }
    };
    std::priority_queue<Candidate> heap;  // the best score first, of equal ones the leftmost
    auto push = [&](int left, int right) {
      if (left < 0 || right < 0) return;
      const Symbol& l = symbols[std::size_t(left)];
      const std::size_t size = l.size + symbols[std::size_t(right)].size;
      const int id = pieces_.find(word.substr(l.begin, size));
      if (id >= 0) heap.push({scores_[std::size_t(id)], left, size});
    };
    for (int i = 1; i < int(symbols.size()); ++i) push(i - 1, i);
    while (!heap.empty()) {
      const Candidate c = heap.top();
      heap.pop();
      Symbol& l = symbols[std::size_t(c.left)];
      if (l.size == 0 || l.next < 0) continue;
      Symbol& r = symbols[std::size_t(l.next)];
      if (r.size == 0 || l.size + r.size != c.size) continue;  // merged differently since it was pushed
      l.size += r.size;
      r.size = 0;
      l.next = r.next;
      if (r.next >= 0) symbols[std::size_t(r.next)].prev = c.left;
      push(l.prev, c.left);
      push(c.left, l.next);
    }
    bool after_unk = false;
    for (int i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[std::size_t(i)].next) {
      const std::string_view text = word.substr(symbols[std::size_t(i)].begin, symbols[std::size_t(i)].size);
      const int id = pieces_.find(text);
      if (id < 0 && !byte_fallback_) {  // the unknown token, a run fused
        require(unk_id_ >= 0, vocab_name_ + ": the text has the character '" + std::string(text) + "', which the vocabulary has no "
                                            "token for, and the tokenizer has neither byte fallback nor an unknown token");
        if (!(after_unk && fuse_unk_)) out.push_back(unk_id_);
        after_unk = true;
        continue;
      }
      after_unk = false;
      if (id >= 0) out.push_back(id);
      else push_bytes(text, out);
    }
  }

  std::string text_;                    // every token's text, concatenated
  std::vector<std::uint32_t> offsets_;  // token id -> its text in text_
  detail::WordMap pieces_;              // piece as spelled ('\u2581' for a space) -> id
  detail::PairMap merges_;
  std::vector<double> scores_;
  std::array<int, 256> byte_id_{};  // <0xNN> -> its id, -1 when absent
  int unk_id_ = -1;
  bool scored_ = false, byte_fallback_ = true, fuse_unk_ = false, ignore_merges_ = false;
  SpacePrefix prefix_ = SpacePrefix::every_piece;
  bool prefix_before_space_ = true, split_words_ = false, remove_extra_whitespaces_ = false;
  std::string vocab_name_;
  AddedTokenMatcher raw_added_, normalized_added_;
};

namespace detail {

/// The byte b of a byte token "<0xNN>" (N uppercase hex, as SentencePiece writes them), or -1.
inline int byte_token_value(std::string_view piece) {
  if (piece.size() != 6 || !piece.starts_with("<0x") || piece[5] != '>') return -1;
  int b = 0;
  for (const char c : piece.substr(3, 2)) {
    if (c >= '0' && c <= '9') b = b * 16 + (c - '0');
    else if (c >= 'A' && c <= 'F') b = b * 16 + (c - 'A' + 10);
    else return -1;
  }
  return b;
}

}  // namespace detail

inline SentencePieceBpeTokenizer::SentencePieceBpeTokenizer(const SentencePieceConfig& config)
    : scored_(!config.scores.empty()), byte_fallback_(config.byte_fallback), fuse_unk_(config.fuse_unk),
      ignore_merges_(config.ignore_merges), prefix_(config.prefix), prefix_before_space_(config.prefix_before_space),
      split_words_(config.split_words), remove_extra_whitespaces_(config.remove_extra_whitespaces), vocab_name_(config.vocab_name) {
  // Every id is a vocabulary token, an added token, or both (then with the same text); ids 0..n-1.
  std::unordered_map<int, const std::string*> piece_of, content_of;
  for (const auto& [piece, id] : config.vocab)
    if (const auto [it, fresh] = piece_of.emplace(id, &piece); !fresh)
      throw Error(config.vocab_name + ": id " + std::to_string(id) + " is given to two tokens ('" + *it->second + "' and '" + piece + "')");
  std::size_t n = piece_of.size();
  for (const AddedToken& t : config.added) {
    require(content_of.emplace(t.id, &t.content).second, config.added_name + ": id " + std::to_string(t.id) + " is listed twice");
    if (const auto it = piece_of.find(t.id); it == piece_of.end()) ++n;
    else
      require(*it->second == t.content, config.added_name + ": the token '" + t.content + "' has id " + std::to_string(t.id) +
                                            ", which " + config.vocab_name + " gives to '" + *it->second + "'");
  }
  require(n > 0, config.vocab_name + ": no tokens");
  for (const auto* ids : {&piece_of, &content_of})
    for (const auto& [id, text] : *ids)
      require(id >= 0 && std::size_t(id) < n, config.vocab_name + ": token '" + *text + "' has id " + std::to_string(id) + "; the ids of " +
                                                   std::to_string(n) + " tokens must be 0.." + std::to_string(n - 1));
  if (scored_) {
    require(config.scores.size() == n, config.vocab_name + ": " + std::to_string(config.scores.size()) + " scores for " +
                                           std::to_string(n) + " tokens (one score per token)");
    for (std::size_t id = 0; id < n; ++id)
      require(std::isfinite(config.scores[id]), config.vocab_name + ": the score of token " + std::to_string(id) + " is not finite");
    scores_ = config.scores;
  }

  // The pieces the symbols are looked up in (for a text given twice, the last id, as llama.cpp),
  // the byte tokens, and each token's text.
  byte_id_.fill(-1);
  std::unordered_map<std::string_view, int> id_of;
  offsets_.push_back(0);
  for (std::size_t id = 0; id < n; ++id) {
    const auto p = piece_of.find(int(id));
    if (p == piece_of.end()) {
      text_.append(*content_of.at(int(id)));
    } else if (const int b = detail::byte_token_value(*p->second); b >= 0) {
      id_of[*p->second] = int(id);
      if (byte_id_[std::size_t(b)] < 0) byte_id_[std::size_t(b)] = int(id);
      text_.push_back(char(b));
    } else {
      id_of[*p->second] = int(id);
      for (std::size_t at = 0; at < p->second->size();) {
        if (p->second->compare(at, detail::kSpaceMark.size(), detail::kSpaceMark) == 0) {
          text_.push_back(' ');
          at += detail::kSpaceMark.size();
        } else {
          text_.push_back((*p->second)[at++]);
        }
      }
    }
    offsets_.push_back(std::uint32_t(text_.size()));
  }
  std::vector<std::pair<std::string_view, int>> entries(id_of.begin(), id_of.end());
  pieces_.build(entries);
  if (!config.unk_token.empty()) {
    const auto it = id_of.find(config.unk_token);
    require(it != id_of.end(), config.vocab_name + ": the unknown token '" + config.unk_token + "' (model.unk_token) is not in the vocabulary");
    unk_id_ = it->second;
  }

  if (!scored_) {
    require(!config.merges.empty(), config.merges_name + ": no merges (model.merges lists the pairs 'a b', by rank)");
    merges_.reserve(config.merges.size());
    for (std::size_t rank = 0; rank < config.merges.size(); ++rank) {
      const MergeRule& m = config.merges[rank];
      auto id = [&](const std::string& symbol) {
        const auto it = id_of.find(symbol);
        require(it != id_of.end(), m.where + ": '" + symbol + "' is not in " + config.vocab_name);
        return it->second;
      };
      merges_.set(id(m.left), id(m.right), detail::Merge{int(rank), id(m.left + m.right)});
    }
  }
  for (const AddedToken& t : config.added) {
    if (!t.normalized) {
      raw_added_.add(t.content, t.id);
      continue;
    }
    std::string escaped;  // found in the text after step 2, so spelled as it is there
    detail::append_escaped(t.content, escaped);
    normalized_added_.add(escaped, t.id);
  }
}

}  // namespace circuitry::text
