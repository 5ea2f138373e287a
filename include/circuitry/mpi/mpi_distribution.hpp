#pragma once
// A Distribution over the ranks of MPI_COMM_WORLD (core/distribution.hpp). Only programs built
// with MPI include it (CMake: -DCIRCUITRY_WITH_MPI=ON finds Open MPI, Debian's libopenmpi-dev);
// the rest of the library never names MPI.
#include <mpi.h>

#include <cstddef>
#include <string>
#include <vector>

#include "circuitry/core/distribution.hpp"
#include "circuitry/core/error.hpp"

namespace circuitry {

class MpiDistribution final : public Distribution {
 public:
  MpiDistribution() {
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    rank_ = static_cast<std::size_t>(rank), size_ = static_cast<std::size_t>(size);
  }
  std::size_t rank() const override { return rank_; }
  std::size_t size() const override { return size_; }

  /// Each rank's owned items, concatenated in item order, gathered by every rank (two
  /// MPI_Allgatherv calls: the items' lengths, then their bytes), and put back in place.
  void share(std::vector<std::string>& items) const override {
    if (size_ == 1) return;
    std::vector<long long> my_lengths;
    std::string my_bytes;
    for (std::size_t i = 0; i < items.size(); ++i)
      if (owns(i)) my_lengths.push_back(static_cast<long long>(items[i].size())), my_bytes += items[i];
    const auto owned_by = [&](std::size_t r) { return items.size() / size_ + (r < items.size() % size_ ? 1 : 0); };
    std::vector<int> counts(size_), offsets(size_);
    for (std::size_t r = 0, at = 0; r < size_; at += counts[r], ++r) counts[r] = static_cast<int>(owned_by(r)), offsets[r] = static_cast<int>(at);
    std::vector<long long> lengths(items.size());
    MPI_Allgatherv(my_lengths.data(), static_cast<int>(my_lengths.size()), MPI_LONG_LONG, lengths.data(), counts.data(), offsets.data(),
                   MPI_LONG_LONG, MPI_COMM_WORLD);
    // lengths holds rank 0's items, then rank 1's, ...: item i is the (i / size)-th of rank i % size.
    std::vector<int> byte_counts(size_, 0), byte_offsets(size_, 0);
    long long total = 0;
    for (std::size_t r = 0, k = 0; r < size_; ++r) {
      long long bytes = 0;
      for (std::size_t j = 0; j < owned_by(r); ++j) bytes += lengths[k++];
      require(total + bytes < (1LL << 31), "MPI: the results to share pass 2 GiB; use fewer edges or thresholds per run");
      byte_offsets[r] = static_cast<int>(total), byte_counts[r] = static_cast<int>(bytes);
      total += bytes;
    }
    std::string all(static_cast<std::size_t>(total), '\0');
    MPI_Allgatherv(my_bytes.data(), static_cast<int>(my_bytes.size()), MPI_CHAR, all.data(), byte_counts.data(), byte_offsets.data(),
                   MPI_CHAR, MPI_COMM_WORLD);
    for (std::size_t r = 0, k = 0; r < size_; ++r) {
      std::size_t at = static_cast<std::size_t>(byte_offsets[r]);
      for (std::size_t j = 0; j < owned_by(r); ++j, ++k) {
        const std::size_t item = j * size_ + r, length = static_cast<std::size_t>(lengths[k]);
        items[item] = all.substr(at, length);
        at += length;
      }
    }
  }

 private:
  std::size_t rank_ = 0, size_ = 1;
};

}  // namespace circuitry
