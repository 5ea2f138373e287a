#pragma once
// Induction: sequences of random tokens whose second half repeats the first (Olsson et al.
// 2022, "In-context Learning and Induction Heads"). An induction head, at a token A, attends to
// the token after A's previous occurrence and copies it: ... A B ... | ... A -> B.
//
// A full sequence of half length n is x_0 .. x_{n-1} x_0 .. x_{n-1}, the first half drawn
// WITHOUT replacement from [0, vocab), so each token occurs once per half and "what followed A"
// is never ambiguous. For training, induction_sequence can put r further distinct tokens in
// front, p_1 .. p_r x_0 .. x_{n-1} x_0 .. x_{n-1}, so the repeat is not always at position 0.
//
// Task examples (make_induction_task): the clean sequence stops k tokens into the repeat,
//   clean     = x_0 .. x_{k-1} x_k x_{k+1} .. x_{n-1} | x_0 .. x_{k-1}     (length n + k)
// so its last token is A = x_{k-1} and the answer is B = x_k. The corrupted sequence replaces
// that earlier B (position k, its only occurrence) by a token C that occurs nowhere in the
// sequence; an induction mechanism now predicts C. answer = B, wrong = C, and clean and
// corrupted have equal length. The cut k is drawn per example, uniformly from
// [min_prefix, n - 1], so lengths vary within a task (Batch pads them; metrics read each
// sequence's own last position).
//
// A second corruption, InductionCorruption::Trigger, replaces the earlier A (position k - 1)
// instead: the induction head then finds no earlier copy of A to attend from, so this variant
// tests where the head looks (its key side, fed by a previous-token head) rather than what it
// copies (its value side). wrong = C there too.
//
// Randomness uses only std::mt19937's raw output (no std::*_distribution, whose results
// differ between standard libraries), so a seed gives the same task on every platform.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "circuitry/core/error.hpp"
#include "circuitry/text/task.hpp"

namespace circuitry {

namespace detail {

/// Uniform in [0, n), by rejection (no modulo bias).
inline std::size_t uniform_below(std::mt19937& rng, std::size_t n) {
  const std::uint64_t range = std::uint64_t{std::mt19937::max()} + 1;
  const std::uint64_t limit = range - range % n;
  std::uint64_t r;
  do r = rng();
  while (r >= limit);
  return static_cast<std::size_t>(r % n);
}

/// The first `count` entries of a uniformly random permutation of [0, vocab): partial
/// Fisher-Yates, so the tokens are distinct.
inline std::vector<int> distinct_tokens(std::size_t vocab, std::size_t count, std::mt19937& rng) {
  std::vector<int> ids(vocab);
  std::iota(ids.begin(), ids.end(), 0);
  for (std::size_t i = 0; i < count; ++i) std::swap(ids[i], ids[i + uniform_below(rng, vocab - i)]);
  ids.resize(count);
  return ids;
}

/// `distinct` tokens must be drawn without replacement from [0, vocab), ids fitting in int.
inline void check_induction_sizes(std::size_t vocab, std::size_t half_length, std::size_t distinct) {
  require(half_length >= 1, "induction: half_length must be at least 1");
  require(vocab <= std::size_t{1} << 31, "induction: vocab_size " + std::to_string(vocab) + " does not fit token ids in int");
  require(distinct <= vocab, "induction: the sequence needs " + std::to_string(distinct) +
                                 " distinct tokens but vocab_size is " + std::to_string(vocab));
}

}  // namespace detail

/// One sequence p_1 .. p_r x_0 .. x_{n-1} x_0 .. x_{n-1} (r = prefix_length, n = half_length):
/// r + n distinct tokens, then the last n again. The prefix moves the repeat away from
/// position 0, so that position alone does not say where the earlier occurrence is.
inline std::vector<int> induction_sequence(std::size_t vocab, std::size_t prefix_length, std::size_t half_length,
                                           std::mt19937& rng) {
  detail::check_induction_sizes(vocab, half_length, prefix_length + half_length);
  std::vector<int> s = detail::distinct_tokens(vocab, prefix_length + half_length, rng);
  s.resize(prefix_length + 2 * half_length);
  std::copy_n(s.begin() + static_cast<std::ptrdiff_t>(prefix_length), half_length,
              s.begin() + static_cast<std::ptrdiff_t>(prefix_length + half_length));
  return s;
}

/// `batch` full repeated sequences x_0 .. x_{n-1} x_0 .. x_{n-1} (length 2 n, n = half_length),
/// each first half sampled without replacement from [0, vocab).
inline std::vector<std::vector<int>> induction_training_batch(std::size_t vocab, std::size_t half_length, std::size_t batch,
                                                              std::mt19937& rng) {
  std::vector<std::vector<int>> seqs(batch);
  for (auto& s : seqs) s = induction_sequence(vocab, 0, half_length, rng);
  return seqs;
}

/// Which earlier token the corrupted sequence changes (see the top of this file).
enum class InductionCorruption {
  Answer,   // the earlier B: the head still attends there but copies C
  Trigger,  // the earlier A: the head has nothing to attend to
};

/// n_examples clean / corrupted pairs as described above, with half length n = half_length and
/// the cut k uniform in [min_prefix, n - 1] (clean length n + k, at most 2 n - 1). Needs
/// 1 <= min_prefix < n and vocab > n (C must lie outside the first half). Deterministic in seed.
inline Task make_induction_task(std::size_t vocab_size, std::size_t half_length, std::size_t n_examples, unsigned seed,
                                std::size_t min_prefix = 2, InductionCorruption corruption = InductionCorruption::Answer) {
  detail::check_induction_sizes(vocab_size, half_length, half_length + 1);
  require(min_prefix >= 1 && min_prefix < half_length,
          "induction: min_prefix must be in [1, half_length - 1] = [1, " + std::to_string(half_length - 1) + "], got " +
              std::to_string(min_prefix));
  std::mt19937 rng(seed);
  Task task;
  task.examples.reserve(n_examples);
  for (std::size_t e = 0; e < n_examples; ++e) {
    // x_0 .. x_{n-1} and, distinct from all of them, C.
    const std::vector<int> ids = detail::distinct_tokens(vocab_size, half_length + 1, rng);
    const std::size_t k = min_prefix + detail::uniform_below(rng, half_length - min_prefix);
    TaskExample ex;
    ex.clean.assign(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(half_length));
    ex.clean.insert(ex.clean.end(), ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k));
    ex.answer = {ids[k]};
    ex.wrong = {ids[half_length]};
    ex.corrupted = ex.clean;
    ex.corrupted[corruption == InductionCorruption::Answer ? k : k - 1] = ids[half_length];
    task.examples.push_back(std::move(ex));
  }
  return task;
}

}  // namespace circuitry
