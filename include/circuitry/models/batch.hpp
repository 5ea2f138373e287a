#pragma once
// A batch of token sequences of possibly different lengths, right-padded to the longest.
// With causal attention a position never sees later ones, so padding changes nothing at
// real positions; metrics read each sequence's own last position.
#include <algorithm>
#include <cstddef>
#include <vector>

#include "circuitry/core/error.hpp"

namespace circuitry {

struct Batch {
  std::size_t batch = 0, pos = 0;
  std::vector<int> tokens;         // [batch, pos], padded with token 0
  std::vector<std::size_t> last;   // per sequence: flat row index b * pos + length - 1

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
    return b;
  }
  std::size_t rows() const { return batch * pos; }
};

}  // namespace circuitry
