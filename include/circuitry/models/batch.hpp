#pragma once
// A batch of token sequences of possibly different lengths, right-padded to the longest.
// Causal attention never sees later positions and bidirectional attention masks the padding
// (ops::KeyMask), so padding changes nothing at real positions. The logits are read at the
// `readout` rows: each sequence's own last position (position mode `last`), or every
// position after the first, BOS (mode `all`, DESIGN.md section 2; tracr's tasks).
#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "circuitry/core/error.hpp"

namespace circuitry {

struct Batch {
  std::size_t batch = 0, pos = 0;
  std::vector<int> tokens;         // [batch, pos], padded with token 0
  std::vector<std::size_t> last;   // per sequence: flat row index b * pos + length - 1
  std::vector<std::size_t> readout;  // flat rows whose logits runs return, grouped by sequence, in order

  static Batch from(const std::vector<std::vector<int>>& seqs) {
    require(!seqs.empty(), "a batch needs at least one sequence");
    Batch b;
    b.batch = seqs.size();
    for (const auto& s : seqs) {
      require(!s.empty(), "a sequence in the batch is empty");
      b.pos = std::max(b.pos, s.size());
    }
    b.tokens.assign(b.batch * b.pos, 0);
    for (std::size_t i = 0; i < seqs.size(); ++i) {
      std::copy(seqs[i].begin(), seqs[i].end(), b.tokens.begin() + static_cast<std::ptrdiff_t>(i * b.pos));
      b.last.push_back(i * b.pos + seqs[i].size() - 1);
    }
    b.readout = b.last;
    return b;
  }
  std::size_t rows() const { return batch * pos; }
  std::size_t length(std::size_t b) const { return last[b] - b * pos + 1; }

  /// Reads the logits at positions 1..length-1 of every sequence (mode `all`).
  void read_all_positions() {
    readout.clear();
    for (std::size_t b = 0; b < batch; ++b) {
      require(length(b) >= 2, "position mode all: sequence " + std::to_string(b + 1) +
                                  " has one token; it needs positions after the first (position 0 is BOS)");
      for (std::size_t t = 1; t < length(b); ++t) readout.push_back(b * pos + t);
    }
  }
  /// Per sequence, the index into `readout` of its last position (in mode `last` 0, 1, 2, ...; in
  /// mode `all` the end of each sequence's group): where its last-position logits are in a run's output.
  std::vector<std::size_t> last_readout_indices() const {
    std::vector<std::size_t> at;
    for (std::size_t i = 0, b = 0; i < readout.size() && b < batch; ++i)
      if (readout[i] == last[b]) at.push_back(i), ++b;
    require(at.size() == batch, "Batch: the readout rows do not include every sequence's last position");
    return at;
  }
  /// Sequences [first, last) as a batch of their own, with the same padded length.
  Batch sequences(std::size_t first, std::size_t last_seq) const {
    require(first < last_seq && last_seq <= batch, "Batch::sequences: [" + std::to_string(first) + ", " + std::to_string(last_seq) +
                                                       ") is not a non-empty range of the " + std::to_string(batch) + " sequences");
    Batch out;
    out.batch = last_seq - first, out.pos = pos;
    const std::size_t row0 = first * pos, row1 = last_seq * pos;
    out.tokens.assign(tokens.begin() + static_cast<std::ptrdiff_t>(row0), tokens.begin() + static_cast<std::ptrdiff_t>(row1));
    for (std::size_t b = first; b < last_seq; ++b) out.last.push_back(last[b] - row0);
    for (std::size_t r : readout)
      if (r >= row0 && r < row1) out.readout.push_back(r - row0);
    return out;
  }
  /// `lanes` copies of this batch stacked one after another (rows of copy k shifted by k * rows()).
  Batch lanes(std::size_t k_lanes) const {
    Batch out;
    out.batch = k_lanes * batch, out.pos = pos;
    for (std::size_t k = 0; k < k_lanes; ++k) {
      out.tokens.insert(out.tokens.end(), tokens.begin(), tokens.end());
      for (std::size_t r : last) out.last.push_back(k * rows() + r);
      for (std::size_t r : readout) out.readout.push_back(k * rows() + r);
    }
    return out;
  }
};

}  // namespace circuitry
