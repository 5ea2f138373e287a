#pragma once
// The byte-level BPE tokenizer's shortcut for words that are one token (bpe_tokenizer.hpp,
// "Speed"): an open-addressing hash map from a word's bytes to its token id.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace circuitry::text::detail {

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

}  // namespace circuitry::text::detail
