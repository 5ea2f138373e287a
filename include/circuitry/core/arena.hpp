#pragma once
// A bump allocator for activations (llm.c keeps every activation in one block; Stan's
// arena does the same for its tape). Blocks are kept across reset(), so after the first
// run of a given size no further system allocation happens; a destroyed arena's blocks go to
// a process-wide cache that the next arena takes them from.
#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

namespace circuitry {

namespace detail {

/// Blocks of destroyed arenas, for the next arena to reuse. Memory fresh from the system costs
/// a page fault on the first touch of every 4 KiB page (a 64 MiB block: 16,384 faults, about
/// 10 ms), and loops that build an arena per forward pass (circuit evaluation along a
/// faithfulness curve, path patching, head detection) would pay that on every pass: the main
/// job spent a quarter of its time in the kernel before this cache. At most kMaxCachedBytes
/// are kept; a block beyond that goes back to the system. Thread-safe (one mutex, taken once
/// per block, not per allocation).
class ArenaBlockCache {
 public:
  static constexpr std::size_t kMaxCachedBytes = std::size_t{256} << 20;
  static constexpr std::size_t kAlign = 64;

  /// The process's cache. Never destroyed, so that an arena destroyed during static
  /// destruction still has somewhere to return its blocks.
  static ArenaBlockCache& instance() {
    static auto* cache = new ArenaBlockCache;
    return *cache;
  }

  /// A cached block of at least `min_bytes` (the smallest such; its size in `size`), else a
  /// new one of `min_bytes` rounded up to the alignment. 64-byte aligned.
  std::byte* take(std::size_t min_bytes, std::size_t& size) {
    min_bytes = (min_bytes + kAlign - 1) / kAlign * kAlign;
    {
      std::lock_guard lock(mutex_);
      auto best = free_.end();
      for (auto it = free_.begin(); it != free_.end(); ++it)
        if (it->size >= min_bytes && (best == free_.end() || it->size < best->size)) best = it;
      if (best != free_.end()) {
        std::byte* p = best->data;
        size = best->size;
        cached_bytes_ -= size;
        free_.erase(best);
        return p;
      }
    }
    auto* p = static_cast<std::byte*>(std::aligned_alloc(kAlign, min_bytes));
    if (!p) throw std::bad_alloc();
    size = min_bytes;
    return p;
  }

  void give(std::byte* p, std::size_t size) {
    {
      std::lock_guard lock(mutex_);
      if (cached_bytes_ + size <= kMaxCachedBytes) try {
          free_.push_back({p, size});
          cached_bytes_ += size;
          return;
        } catch (const std::bad_alloc&) {  // no room to remember it: free it below
        }
    }
    std::free(p);
  }

  /// Bytes held for reuse.
  std::size_t cached_bytes() {
    std::lock_guard lock(mutex_);
    return cached_bytes_;
  }
  /// Returns every cached block to the system (before a phase that needs the memory elsewhere).
  void clear() {
    std::lock_guard lock(mutex_);
    for (const FreeBlock& b : free_) std::free(b.data);
    free_.clear();
    cached_bytes_ = 0;
  }

 private:
  struct FreeBlock {
    std::byte* data;
    std::size_t size;
  };
  std::mutex mutex_;
  std::vector<FreeBlock> free_;
  std::size_t cached_bytes_ = 0;
};

}  // namespace detail

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
  struct ReturnToCache {
    std::size_t size;
    void operator()(std::byte* p) const { detail::ArenaBlockCache::instance().give(p, size); }
  };
  struct Block {
    std::unique_ptr<std::byte[], ReturnToCache> data;
    std::size_t size;
  };
  static constexpr std::size_t kAlign = detail::ArenaBlockCache::kAlign;

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
    blocks_.reserve(blocks_.size() + 1);  // push_back below cannot throw and lose the block
    std::size_t size = 0;
    std::byte* raw = detail::ArenaBlockCache::instance().take(std::max(block_bytes_, bytes), size);
    blocks_.push_back({{raw, ReturnToCache{size}}, size});
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
