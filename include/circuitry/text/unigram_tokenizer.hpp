#pragma once
// SentencePiece Unigram tokenizers (Kudo 2018, "Subword Regularization"): T5's, ALBERT's, XLNet's
// and other SentencePiece models of model_type UNIGRAM, from a tokenizer.model (id for id as the
// sentencepiece library's SentencePieceProcessor.encode) or a tokenizer.json (as Hugging Face
// tokenizers' encode(text, add_special_tokens=False)). The files are read by unigram_config.hpp and
// sentencepiece_model.hpp; the text to segment is made by unigram_pipeline.hpp.
//
// Segmentation: of all the ways to cut a text into pieces of the vocabulary, the one with the
// largest sum of piece scores (log probabilities), found by Viterbi over byte positions: best[e]
// is the best cut of the text's first e bytes, from best[s] + score(piece) for every piece that
// matches from s to e (ties: the first found, from the leftmost s and the shortest piece, as both
// libraries). A character at s that starts no one-character piece may be cut alone as the unknown
// token, scored min_score - 10 (SentencePiece's kUnkPenalty; min_score: over the normal pieces in
// sentencepiece, over all in tokenizers). Then each unknown piece is its UTF-8 bytes' <0xNN> tokens
// with byte fallback, else the unknown token, a run of them fused into one.
// The two libraries differ, and each is followed:
//   - sentencepiece scores in float (a sum in double rounded to float at each position, as
//     unigram_model.cc's EncodeOptimized), leaves control, unknown, byte and unused pieces out of
//     the segmentation, and scores a user-defined piece length_in_bytes * max_score - 0.1 (so it
//     always wins); tokenizers sums doubles over every piece of the vocabulary, user-defined ones
//     being added tokens cut out before.
//   - tokenizers segments each pre-tokenized word alone; sentencepiece the whole normalized text.
// decode() and token_text() give '\u2581' as a space and a <0xNN> token as its byte.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "circuitry/core/error.hpp"
#include "circuitry/text/added_tokens.hpp"
#include "circuitry/text/sentencepiece_bpe.hpp"
#include "circuitry/text/tokenizer.hpp"
#include "circuitry/text/unigram_config.hpp"
#include "circuitry/text/unigram_pipeline.hpp"
#include "circuitry/text/utf8.hpp"

namespace circuitry::text {

class UnigramTokenizer final : public Tokenizer {
 public:
  /// Checks the config (a piece for every id, the unknown token an id, finite scores); an Error
  /// names the file otherwise.
  explicit UnigramTokenizer(const UnigramConfig& config);

  std::vector<int> encode(std::string_view utf8) const override { return encode_text(utf8, false); }
  std::vector<int> encode_continuation(std::string_view utf8) const override { return encode_text(utf8, true); }

  std::string decode(const std::vector<int>& ids) const override {
    std::string out;
    for (const int id : ids) out.append(token_text(id));
    return out;
  }

  std::string token_text(int id) const override {
    require(id >= 0 && std::size_t(id) < vocab_size(),
            "token id " + std::to_string(id) + " is out of range (the vocabulary has " + std::to_string(vocab_size()) + " tokens)");
    return text_[std::size_t(id)];
  }

  std::size_t vocab_size() const override { return text_.size(); }

 private:
  /// A byte trie of the pieces segmentation may use: node -> (byte -> child), and the piece ending at each node.
  struct Trie {
    std::unordered_map<std::uint64_t, std::uint32_t> child;
    std::vector<int> piece = std::vector<int>(1, -1);
    void add(std::string_view text, int id) {
      std::uint32_t node = 0;
      for (const char c : text) {
        const auto [it, fresh] = child.emplace(std::uint64_t(node) << 8 | static_cast<unsigned char>(c), std::uint32_t(piece.size()));
        if (fresh) piece.push_back(-1);
        node = it->second;
      }
      piece[node] = id;
    }
  };

  std::vector<int> encode_text(std::string_view utf8, bool continuation) const {
    detail::require_utf8(utf8);
    std::vector<int> ids;
    if (sentencepiece_) {
      segment(detail::sentencepiece_normalize(utf8, spec_, continuation), ids);
      return ids;
    }
    raw_added_.split(utf8, [&](std::string_view piece, int added) {
      if (added >= 0) return ids.push_back(added);
      const std::string normalized = detail::normalize(spec_.normalizers, piece, continuation);
      normalized_added_.split(normalized, [&](std::string_view part, int added_after) {
        if (added_after >= 0) return ids.push_back(added_after);
        const bool at_start = piece.data() == utf8.data() && part.data() == normalized.data();
        for (const detail::Word& w : detail::pre_tokenize(spec_.pre_tokenizers, part, at_start, continuation)) segment(w.text, ids);
      });
    });
    return ids;
  }

  /// Viterbi over one text (see the top), appending its ids.
  void segment(std::string_view text, std::vector<int>& out) const {
    struct Best {
      double score = 0;  // in sentencepiece's mode a float's value
      int start = -1, id = -1;
    };
    std::vector<Best> best(text.size() + 1);
    for (std::size_t start = 0, len = 1; start < text.size(); start += len) {
      detail::code_point_at(reinterpret_cast<const unsigned char*>(text.data() + start), len);
      const double here = best[start].score;
      bool single = false;
      std::uint32_t node = 0;
      for (std::size_t end = start; end < text.size();) {
        const auto it = trie_.child.find(std::uint64_t(node) << 8 | static_cast<unsigned char>(text[end++]));
        if (it == trie_.child.end()) break;
        node = it->second;
        const int id = trie_.piece[node];
        if (id < 0) continue;
        double candidate = here + scores_[std::size_t(id)];
        if (sentencepiece_ && user_defined_[std::size_t(id)]) candidate = here + (double(float(end - start) * max_score_) - 0.1);
        if (best[end].start < 0 || candidate > best[end].score)  // sentencepiece keeps the float
          best[end] = {sentencepiece_ ? double(float(candidate)) : candidate, int(start), id};
        single = single || end - start == len;
      }
      if (single) continue;
      const double unknown = sentencepiece_ ? double(float(unk_score_) + float(here)) : unk_score_ + here;
      if (best[start + len].start < 0 || unknown > best[start + len].score) best[start + len] = {unknown, int(start), -1};
    }
    std::vector<std::pair<std::size_t, int>> cuts;  // (start, id), id -1 for an unknown piece, from the end
    for (std::size_t end = text.size(); end > 0; end = std::size_t(best[end].start)) cuts.emplace_back(best[end].start, best[end].id);
    std::size_t unknown_from = std::string_view::npos;  // the start of a run of unknown pieces
    for (std::size_t k = cuts.size(); k-- > 0;) {
      const std::size_t end = k == 0 ? text.size() : cuts[k - 1].first;
      if (cuts[k].second >= 0) {
        out.push_back(cuts[k].second);
        continue;
      }
      if (sentencepiece_ && byte_fallback_) {  // sentencepiece: each unknown character its bytes
        push_bytes(text.substr(cuts[k].first, end - cuts[k].first), out);
        continue;
      }
      if (unknown_from == std::string_view::npos) unknown_from = cuts[k].first;
      if (k > 0 && cuts[k - 1].second < 0) continue;  // the run goes on
      push_unknown(text.substr(unknown_from, end - unknown_from), out);
      unknown_from = std::string_view::npos;
    }
  }

  /// A run of unknown characters: its bytes' tokens (tokenizers' byte fallback, when it has them
  /// all), else the unknown token.
  void push_unknown(std::string_view run, std::vector<int>& out) const {
    bool all_bytes = byte_fallback_;
    for (const char c : run) all_bytes = all_bytes && byte_id_[static_cast<unsigned char>(c)] >= 0;
    if (all_bytes) return push_bytes(run, out);
    require(unk_id_ >= 0, vocab_name_ + ": the text has '" + std::string(run) + "', which the vocabulary has no piece for, and the "
                                        "tokenizer has no unknown token (model.unk_id)" + (byte_fallback_ ? " and misses byte tokens" : ""));
    out.push_back(unk_id_);
  }

  void push_bytes(std::string_view bytes, std::vector<int>& out) const {
    for (const char c : bytes) {
      const int id = byte_id_[static_cast<unsigned char>(c)];
      if (id < 0) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02X", unsigned(static_cast<unsigned char>(c)));
        throw Error(vocab_name_ + ": the text has '" + std::string(bytes) + "', which the vocabulary has no piece for, and its byte " +
                    hex + " has no byte token <" + hex + ">, so this model cannot read the text");
      }
      out.push_back(id);
    }
  }

  std::vector<std::string> text_;  // each token's text ('\u2581' a space, a byte token its byte)
  std::vector<double> scores_;
  std::vector<bool> user_defined_;
  Trie trie_;
  std::array<int, 256> byte_id_{};
  int unk_id_ = -1;
  double unk_score_ = 0;
  float max_score_ = 0;
  bool sentencepiece_ = false, byte_fallback_ = false;
  UnigramConfig spec_;  // the normalizers and pre-tokenizers, or the normalizer spec
  std::string vocab_name_;
  AddedTokenMatcher raw_added_, normalized_added_;
};

inline UnigramTokenizer::UnigramTokenizer(const UnigramConfig& config)
    : unk_id_(config.unk_id), sentencepiece_(config.sentencepiece_library), byte_fallback_(config.byte_fallback), vocab_name_(config.vocab_name) {
  const std::size_t n = config.pieces.size();
  require(n > 0, config.vocab_name + ": no pieces");
  require(unk_id_ >= -1 && (unk_id_ < 0 || std::size_t(unk_id_) < n),
          config.vocab_name + ": the unknown token's id " + std::to_string(unk_id_) + " is not an id of the vocabulary");
  spec_.normalizers = config.normalizers;
  spec_.pre_tokenizers = config.pre_tokenizers;
  spec_.add_dummy_prefix = config.add_dummy_prefix;
  spec_.remove_extra_whitespaces = config.remove_extra_whitespaces;
  spec_.escape_whitespaces = config.escape_whitespaces;
  byte_id_.fill(-1);
  // sentencepiece: min and max over the normal pieces, max at least FLT_MIN (unigram_model.cc)
  double min_score = 0, max_score = 1.17549435e-38;
  bool any = false;
  text_.reserve(n);
  scores_.reserve(n);
  for (std::size_t id = 0; id < n; ++id) {
    const UnigramPiece& p = config.pieces[id];
    require(std::isfinite(p.score), config.vocab_name + ": the score of piece " + std::to_string(id) + " is not finite");
    const double score = sentencepiece_ ? double(float(p.score)) : p.score;
    scores_.push_back(score);
    user_defined_.push_back(p.kind == PieceKind::user_defined);
    const bool counts = !sentencepiece_ || p.kind == PieceKind::normal;
    if (counts) {
      min_score = any ? std::min(min_score, score) : score;
      max_score = std::max(max_score, score);
      any = true;
    }
    const int byte = detail::byte_token_value(p.text);
    if (byte >= 0 && (!sentencepiece_ || p.kind == PieceKind::byte)) {
      if (byte_id_[std::size_t(byte)] < 0 || !sentencepiece_) byte_id_[std::size_t(byte)] = int(id);  // tokenizers: the last id of a text
      text_.push_back(std::string(1, char(byte)));
    } else {
      text_.push_back(detail::replace_all(p.text, detail::kSpaceMark, " "));
    }
    const bool segments = !sentencepiece_ || p.kind == PieceKind::normal || p.kind == PieceKind::user_defined;
    if (segments && !p.text.empty()) trie_.add(p.text, int(id));
  }
  unk_score_ = sentencepiece_ ? double(float(min_score) - 10.0f) : min_score - 10.0;
  max_score_ = float(max_score);
  for (const AddedToken& t : config.added) {
    require(t.id >= 0 && std::size_t(t.id) < n,
            config.added_name + ": the token '" + t.content + "' has id " + std::to_string(t.id) + ", outside the vocabulary of " +
                std::to_string(n) + " pieces");
    text_[std::size_t(t.id)] = t.content;
    if (!t.normalized) raw_added_.add(t.content, t.id);
    else normalized_added_.add(t.content, t.id);
  }
}

}  // namespace circuitry::text
