#pragma once
// Ragged picks: each row r of x [R, V] picks its own non-empty set of columns cols[r] and
// reduces them to one number, y [R]. The answer-set metrics (DESIGN.md section 2) are built
// from it: a mean of logits (logit_diff), a max of logits (logit_diff_max, the docstring
// task's "best wrong token"), and a log-sum-exp of log-probabilities, whose exp is the
// probability of the set (prob_diff) and whose negation is the loss.
//
// With one column per row each reduction returns that entry exactly (x / 1, max of one,
// m + log(exp(0)) = m), and so does its backward: single-token metrics are unchanged.
#include <cmath>
#include <string>
#include <vector>

#include "circuitry/ops/common.hpp"

namespace circuitry::ops {

enum class SetReduce { Mean, Max, LogSumExp };

/// y[r] = reduce_{c in cols[r]} x[r, c] for x [R, V] -> [R].
/// Backward: Mean spreads dy / |set| over the set; Max sends dy to the first maximal entry
/// (a subgradient; ties are a measure-zero event for real logits); LogSumExp sends
/// dy * softmax over the set, exp(x[r, c] - y[r]).
template <class Ctx, class T = typename Ctx::scalar>
Var<T> pick_reduce(const Ctx& ctx, const Var<T>& x, const std::vector<std::vector<int>>& cols, SetReduce reduce) {
  const std::size_t V = x.shape.cols(), R = x.shape.rows();
  require(cols.size() == R, "pick_reduce: need one column set per row");
  for (const auto& set : cols) {
    require(!set.empty(), "pick_reduce: a row's column set is empty");
    for (int c : set)
      require(c >= 0 && static_cast<std::size_t>(c) < V, "pick_reduce: column " + std::to_string(c) + " out of range");
  }
  auto at = [V](const T* row_major, std::size_t r, int c) { return row_major[r * V + static_cast<std::size_t>(c)]; };
  Var<T> y = ctx.output({R}, x.needs_grad());
  for (std::size_t r = 0; r < R; ++r) {
    const auto& set = cols[r];
    T acc = at(x.value, r, set[0]);
    switch (reduce) {
      case SetReduce::Mean:
        for (std::size_t i = 1; i < set.size(); ++i) acc += at(x.value, r, set[i]);
        acc /= T(set.size());
        break;
      case SetReduce::Max:
        for (std::size_t i = 1; i < set.size(); ++i) acc = std::max(acc, at(x.value, r, set[i]));
        break;
      case SetReduce::LogSumExp: {
        T m = acc;  // shift by the largest entry so no exp overflows
        for (std::size_t i = 1; i < set.size(); ++i) m = std::max(m, at(x.value, r, set[i]));
        T s = 0;
        for (int c : set) s += std::exp(at(x.value, r, c) - m);
        acc = m + std::log(s);
        break;
      }
    }
    y.value[r] = acc;
  }
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, x, y, cols, V, R, reduce] {
        T* dx = ctx.grad(x);
        const T* dy = ctx.grad(y);
        for (std::size_t r = 0; r < R; ++r) {
          const auto& set = cols[r];
          T* row = dx + r * V;
          const T* xr = x.value + r * V;
          switch (reduce) {
            case SetReduce::Mean:
              for (int c : set) row[c] += dy[r] / T(set.size());
              break;
            case SetReduce::Max: {
              int best = set[0];
              for (int c : set)
                if (xr[c] > xr[best]) best = c;
              row[best] += dy[r];
              break;
            }
            case SetReduce::LogSumExp:
              for (int c : set) row[c] += dy[r] * std::exp(xr[c] - y.value[r]);
              break;
          }
        }
      });
  }
  return y;
}

}  // namespace circuitry::ops
