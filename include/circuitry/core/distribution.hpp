#pragma once
// Work split over processes (MPI ranks, include/circuitry/mpi/): the drivers that accept a
// Distribution (exact patching's groups of lanes, ACDC's threshold sweep) hand item i of their
// fixed list to rank i % size, so the split depends on the work's shape and the rank count only,
// never on timing; each item is computed exactly as a one-process run computes it, and
// share() gives every rank every item, so the results are the same bytes on any number of ranks.
// Without one (a null pointer), everything runs in this process.
#include <cstddef>
#include <string>
#include <vector>

namespace circuitry {

class Distribution {
 public:
  virtual ~Distribution() = default;
  virtual std::size_t rank() const = 0;
  virtual std::size_t size() const = 0;

  /// Whether this rank computes item `item` of a fixed list.
  bool owns(std::size_t item) const { return item % size() == rank(); }

  /// Every rank passes the same number of items, having filled the ones it owns; afterwards every
  /// rank holds every item (the owner's bytes).
  virtual void share(std::vector<std::string>& items) const = 0;
};

/// The bytes of a trivially copyable value, and back: what share() carries.
template <class T>
void append_bytes(std::string& out, const T* values, std::size_t n) {
  out.append(reinterpret_cast<const char*>(values), n * sizeof(T));
}

template <class T>
void read_bytes(const std::string& in, std::size_t& offset, T* values, std::size_t n) {
  in.copy(reinterpret_cast<char*>(values), n * sizeof(T), offset);
  offset += n * sizeof(T);
}

}  // namespace circuitry
