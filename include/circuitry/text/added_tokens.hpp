#pragma once
// Finding added tokens in a text. A tokenizer.json's "added_tokens" are strings (special ones
// such as <|endoftext|> and <|im_start|>, and others such as GPT-NeoX's runs of spaces) that are
// cut out of the text before pre-tokenization and become one token each, never merged with
// their neighbours. Hugging Face tokenizers (tokenizer/added_vocabulary.rs, find_matches) finds
// them with an Aho-Corasick automaton in MatchKind::LeftmostLongest: the match that starts
// first wins, of those the longest, and the search goes on after it; the text between matches
// is ordinary text.
//
// Here a byte trie does the same: at each position that can start a token (a table of the
// tokens' first bytes; memchr when they all start with one byte, as <|...|> tokens do) the trie
// is walked as far as the text follows it, remembering the last token passed; the first
// position where one is passed wins. An added token is at most a few dozen bytes, so this
// costs at most that many steps per candidate position.
#include <array>
#include <cstddef>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

namespace circuitry::text {

class AddedTokenMatcher {
 public:
  /// Adds token `content` (not empty, not added before) with id `id` (>= 0).
  void add(std::string_view content, int id) {
    int node = 0;
    for (const char c : content) {
      const auto b = static_cast<unsigned char>(c);
      int next = child(node, b);
      if (next < 0) {
        next = int(nodes_.size());
        nodes_[std::size_t(node)].children.emplace_back(b, next);
        nodes_.emplace_back();
      }
      node = next;
    }
    nodes_[std::size_t(node)].id = id;
    const auto first = static_cast<unsigned char>(content[0]);
    if (!starts_[first]) starts_[first] = true, ++n_starts_, only_start_ = first;
  }

  bool empty() const { return n_starts_ == 0; }

  /// Calls f(piece, id) for the pieces of text, in order: each added token found (its id) and
  /// the text between them (id -1, never empty).
  template <class F>
  void split(std::string_view text, F&& f) const {
    const auto* begin = reinterpret_cast<const unsigned char*>(text.data());
    const auto* end = begin + text.size();
    const unsigned char* done = begin;  // the pieces before it have been given to f
    for (const unsigned char* p = next_start(begin, end); p < end; p = next_start(p, end)) {
      const auto [match_end, id] = longest_at(p, end);
      if (id < 0) {
        ++p;
        continue;
      }
      if (p > done) f(piece(done, p), -1);
      f(piece(p, match_end), id);
      done = p = match_end;
    }
    if (end > done) f(piece(done, end), -1);
  }

 private:
  struct Node {
    int id = -1;                                          // the token that ends here, or -1
    std::vector<std::pair<unsigned char, int>> children;  // (byte, node)
  };

  static std::string_view piece(const unsigned char* a, const unsigned char* b) {
    return std::string_view(reinterpret_cast<const char*>(a), std::size_t(b - a));
  }

  int child(int node, unsigned char b) const {
    for (const auto& [byte, next] : nodes_[std::size_t(node)].children)
      if (byte == b) return next;
    return -1;
  }

  /// The first position at or after p where a token may start, or end.
  const unsigned char* next_start(const unsigned char* p, const unsigned char* end) const {
    if (n_starts_ == 0 || p >= end) return end;
    if (n_starts_ == 1) {
      const void* q = std::memchr(p, only_start_, std::size_t(end - p));
      return q ? static_cast<const unsigned char*>(q) : end;
    }
    while (p < end && !starts_[*p]) ++p;
    return p;
  }

  /// The end and id of the longest token that starts at p, or id -1.
  std::pair<const unsigned char*, int> longest_at(const unsigned char* p, const unsigned char* end) const {
    std::pair<const unsigned char*, int> best{p, -1};
    for (int node = 0; p < end;) {
      node = child(node, *p++);
      if (node < 0) break;
      if (nodes_[std::size_t(node)].id >= 0) best = {p, nodes_[std::size_t(node)].id};
    }
    return best;
  }

  std::vector<Node> nodes_ = std::vector<Node>(1);  // nodes_[0] is the root
  std::array<bool, 256> starts_{};                  // the first bytes of the tokens
  int n_starts_ = 0;
  unsigned char only_start_ = 0;  // the first byte, when n_starts_ is 1
};

}  // namespace circuitry::text
