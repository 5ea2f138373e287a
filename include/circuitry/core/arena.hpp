#pragma once
// A bump allocator for activations (llm.c keeps every activation in one block; Stan's
// arena does the same for its tape). Blocks are kept across reset(), so after the first
// run of a given size no further system allocation happens.
#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

namespace circuitry {

class Arena {
 public:
  explicit Arena(std::size_t block_bytes = std::size_t{64} << 20) : block_bytes_(block_bytes) {}
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  Arena(Arena&&) = default;
  Arena& operator=(Arena&&) = default;

  /// Uninitialised storage for n values of T, 64-byte aligned.
  template <class T>
  T* alloc(std::size_t n) {
    T* p = static_cast<T*>(alloc_bytes(n * sizeof(T)));
#ifdef CIRCUITRY_ARENA_POISON  // debug aid: uninitialised reads show up as NaN
    std::memset(static_cast<void*>(p), 0xFF, n * sizeof(T));
#endif
    return p;
  }
  /// Zero-filled storage for n values of T.
  template <class T>
  T* zeros(std::size_t n) {
    T* p = alloc<T>(n);
    std::memset(static_cast<void*>(p), 0, n * sizeof(T));
    return p;
  }
  /// A position in the arena, to return to with rewind() (nested tape scopes).
  struct Mark {
    std::size_t block = 0, offset = 0;
  };
  Mark mark() const { return {current_, offset_}; }
  /// Forget every allocation made since `m`.
  void rewind(Mark m) {
    current_ = m.block;
    offset_ = m.offset;
  }

  /// Forget every allocation; keep the memory for the next run.
  void reset() {
    current_ = 0;
    offset_ = 0;
  }
  /// Bytes reserved from the system (for the benchmarks' memory figures).
  std::size_t reserved_bytes() const {
    std::size_t total = 0;
    for (const auto& b : blocks_) total += b.size;
    return total;
  }

 private:
  struct Block {
    std::unique_ptr<std::byte[], void (*)(std::byte*)> data;
    std::size_t size;
  };
  static constexpr std::size_t kAlign = 64;

  void* alloc_bytes(std::size_t bytes) {
    bytes = (bytes + kAlign - 1) / kAlign * kAlign;
    while (current_ < blocks_.size()) {
      if (offset_ + bytes <= blocks_[current_].size) {
        void* p = blocks_[current_].data.get() + offset_;
        offset_ += bytes;
        return p;
      }
      ++current_;
      offset_ = 0;
    }
    const std::size_t size = std::max(block_bytes_, bytes);
    auto* raw = static_cast<std::byte*>(std::aligned_alloc(kAlign, size));
    if (!raw) throw std::bad_alloc();
    blocks_.push_back({{raw, [](std::byte* p) { std::free(p); }}, size});
    current_ = blocks_.size() - 1;
    offset_ = bytes;
    return raw;
  }

  std::size_t block_bytes_;
  std::vector<Block> blocks_;
  std::size_t current_ = 0;
  std::size_t offset_ = 0;
};

}  // namespace circuitry
