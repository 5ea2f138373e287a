#pragma once
// The merge step of byte-level BPE (step 5 of bpe_tokenizer.hpp). The merge list holds pairs of
// symbols in the order they were learned; BPE repeatedly merges the adjacent pair with the lowest
// rank (the leftmost if it occurs twice) until no adjacent pair is in the list. A short word is
// merged in place in a small buffer; a long word (a run of digits, of spaces) uses a heap so it
// costs O(n log n), not O(n^2).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <queue>
#include <string_view>
#include <utility>
#include <vector>

namespace circuitry::text::detail {

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

/// Words longer than this are merged through a heap (bpe_long), shorter ones in place (bpe).
inline constexpr std::size_t kShortWord = 64;

/// Merges the symbols `ids` (token ids) as Hugging Face's Word::merge_all does, and appends the
/// result to out: the symbols in a linked list, candidate merges in a min-heap by (rank, position),
/// stale ones skipped. (SentencePiece-style BPE starts from characters, byte-level from bytes.)
inline void merge_symbols(std::vector<int> ids, const PairMap& merges, std::vector<int>& out) {
  const std::size_t n = ids.size();
  if (n == 0) return;
  std::vector<int> prev(n), next(n);
  for (std::size_t i = 0; i < n; ++i) prev[i] = int(i) - 1, next[i] = i + 1 < n ? int(i) + 1 : -1;
  using Candidate = std::pair<int, int>;  // (rank, position of the left symbol)
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto push = [&](int left) {
    if (left < 0 || next[std::size_t(left)] < 0) return;
    const Merge m = merges.find(ids[std::size_t(left)], ids[std::size_t(next[std::size_t(left)])]);
    if (m.id >= 0) heap.emplace(m.rank, left);
  };
  for (std::size_t i = 0; i + 1 < n; ++i) push(int(i));
  while (!heap.empty()) {
    const auto [rank, left] = heap.top();
    heap.pop();
    const auto l = std::size_t(left);
    if (ids[l] < 0 || next[l] < 0) continue;  // merged away since
    const auto r = std::size_t(next[l]);
    const Merge m = merges.find(ids[l], ids[r]);
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

/// BPE(word) of a long word appended to out, through the heap of merge_symbols.
inline void bpe_long(std::string_view word, const std::array<int, 256>& byte_id, const PairMap& merges,
                     std::vector<int>& out) {
  std::vector<int> ids(word.size());
  for (std::size_t i = 0; i < word.size(); ++i) ids[i] = byte_id[static_cast<unsigned char>(word[i])];
  merge_symbols(std::move(ids), merges, out);
}

/// Appends BPE(word) to out: merge the lowest-ranked adjacent pair until none is left. byte_id
/// gives each byte's token, merges what merging a pair of tokens gives.
inline void bpe(std::string_view word, const std::array<int, 256>& byte_id, const PairMap& merges, std::vector<int>& out) {
  if (word.size() > kShortWord) return bpe_long(word, byte_id, merges, out);
  // Short words in place: ids[i] the symbols, next[i] what merging ids[i], ids[i+1] gives.
  std::array<int, kShortWord> ids;
  std::array<Merge, kShortWord> next;
  std::size_t n = word.size();
  for (std::size_t i = 0; i < n; ++i) ids[i] = byte_id[static_cast<unsigned char>(word[i])];
  for (std::size_t i = 0; i + 1 < n; ++i) next[i] = merges.find(ids[i], ids[i + 1]);
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
    if (best > 0) next[best - 1] = merges.find(ids[best - 1], ids[best]);
    if (best + 1 < n) next[best] = merges.find(ids[best], ids[best + 1]);
  }
  out.insert(out.end(), ids.begin(), ids.begin() + std::ptrdiff_t(n));
}

}  // namespace circuitry::text::detail
