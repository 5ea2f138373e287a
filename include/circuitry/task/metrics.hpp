#pragma once
// Metrics M (DESIGN.md section 2): the mean over examples of a per-example value at the
// readout rows: the last position of the clean sequence (position mode `last`), or the mean
// over positions 1..P-1 (mode `all`, tracr's tasks; position 0 is BOS). The answer A and the
// wrong set W of an example are each one token id or a non-empty set of ids:
//   logit_diff     = mean_{a in A} logit[a] - mean_{w in W} logit[w]   (IOI: IO minus S)
//   prob_diff      = sum_{a in A} p[a] - sum_{w in W} p[w]             (Greater-Than)
//   logit_diff_max = mean_{a in A} logit[a] - max_{w in W} logit[w]    (docstring)
//   kl             = KL(p_clean || p_run)
//   loss           = -log sum_{a in A} p[a]
//   l2             = mean over the output dimensions d of (logit[d] - logit_clean[d])^2
//                    (ACDC's tracr metric; `outputs` restricts d, tracr-proportion reads d = 0)
// With one id each these are the single-token definitions, bit for bit (ops::pick_reduce).
// kl and l2 are zero at the clean run and so is their gradient there: EAP (clean-run
// gradients) scores every edge 0 under them; EAP-IG and clean-corrupted do not.
// A metric is any callable (ctx, logits [rows, vocab], MetricData) -> scalar Var built
// from ops, so gradients flow through it on the tape; BuiltinMetric is one such callable.
#include <cmath>
#include <string>
#include <vector>

#include "circuitry/ops.hpp"

namespace circuitry {

enum class MetricKind { LogitDiff, ProbDiff, KL, Loss, LogitDiffMax, L2 };

inline MetricKind parse_metric(const std::string& name) {
  if (name == "logit_diff") return MetricKind::LogitDiff;
  if (name == "prob_diff") return MetricKind::ProbDiff;
  if (name == "kl") return MetricKind::KL;
  if (name == "loss") return MetricKind::Loss;
  if (name == "logit_diff_max") return MetricKind::LogitDiffMax;
  if (name == "l2") return MetricKind::L2;
  throw Error("unknown metric '" + name + "' (choose logit_diff, prob_diff, logit_diff_max, kl, loss or l2)");
}

inline std::string metric_name(MetricKind k) {
  switch (k) {
    case MetricKind::LogitDiff: return "logit_diff";
    case MetricKind::ProbDiff: return "prob_diff";
    case MetricKind::KL: return "kl";
    case MetricKind::Loss: return "loss";
    case MetricKind::LogitDiffMax: return "logit_diff_max";
    case MetricKind::L2: return "l2";
  }
  return "?";
}

/// Whether a metric reads the answer and wrong sets.
inline bool needs_answers(MetricKind k) { return k != MetricKind::KL && k != MetricKind::L2; }

/// What a metric may read besides the run's logits. Everything is per readout row (one per
/// example in position mode `last`; an example's sets repeat on each of its rows in mode `all`).
template <class T>
struct MetricData {
  std::size_t rows = 0;                         // readout rows
  std::vector<std::vector<int>> answer, wrong;  // per row: the answer set A and the wrong set W
  std::vector<T> clean_log_probs;               // [rows, vocab]: log-softmax of the clean run (for kl)
  std::vector<T> clean_logits;                  // [rows, vocab]: the clean run's logits (for l2)
  std::vector<int> outputs;                     // l2's output dimensions (empty: all)
  /// Per row: 1 / (examples * rows of its example), when examples have different numbers of
  /// rows; empty when every example has the same number (the metric is then the mean over rows).
  std::vector<T> row_weights;
};

/// The mean over examples of per-row values [rows]: the plain mean, or the weighted sum.
template <class Ctx, class T = typename Ctx::scalar>
Var<T> mean_over_examples(const Ctx& ctx, const Var<T>& per_row, const MetricData<T>& d) {
  if (d.row_weights.empty()) return ops::mean(ctx, per_row);
  T* w = ctx.arena().template alloc<T>(d.row_weights.size());
  std::copy(d.row_weights.begin(), d.row_weights.end(), w);
  return ops::sum(ctx, ops::mul(ctx, per_row, Var<T>{w, {d.row_weights.size()}, nullptr}));
}

/// log-softmax of each row of logits [rows, V], by the same kernel the kl metric applies to a
/// run's logits, so that the clean run's KL to itself is exactly 0.
template <class T>
std::vector<T> log_softmax_rows(const T* logits, std::size_t rows, std::size_t V) {
  Arena arena;
  Context<T, false> ctx(arena);
  const Var<T> logp = ops::log_softmax(ctx, Var<T>{const_cast<T*>(logits), {rows, V}, nullptr});
  return std::vector<T>(logp.value, logp.value + rows * V);
}

struct BuiltinMetric {
  MetricKind kind = MetricKind::LogitDiff;

  template <class Ctx, class T = typename Ctx::scalar>
  Var<T> operator()(const Ctx& ctx, const Var<T>& logits, const MetricData<T>& d) const {
    const std::size_t B = logits.shape[0], V = logits.shape[1];
    if (needs_answers(kind))
      for (std::size_t r = 0; r < d.answer.size(); ++r)
        require(!d.answer[r].empty() && !d.wrong[r].empty(),
                "metric " + metric_name(kind) + " needs \"answer\" and \"wrong\" tokens in every task line, and the task has "
                "none; use --metric kl or l2, or add them to the task");
    auto mean = [&](const Var<T>& per_row) { return mean_over_examples(ctx, per_row, d); };
    switch (kind) {
      case MetricKind::LogitDiff:
        return mean(ops::add(ctx, ops::pick_reduce(ctx, logits, d.answer, ops::SetReduce::Mean),
                             ops::scale(ctx, ops::pick_reduce(ctx, logits, d.wrong, ops::SetReduce::Mean), T(-1))));
      case MetricKind::LogitDiffMax:
        return mean(ops::add(ctx, ops::pick_reduce(ctx, logits, d.answer, ops::SetReduce::Mean),
                             ops::scale(ctx, ops::pick_reduce(ctx, logits, d.wrong, ops::SetReduce::Max), T(-1))));
      case MetricKind::ProbDiff: {
        // p(A) = sum_{a in A} p[a] = exp(logsumexp_{a in A} log p[a])
        Var<T> logp = ops::log_softmax(ctx, logits);
        Var<T> pa = ops::exp(ctx, ops::pick_reduce(ctx, logp, d.answer, ops::SetReduce::LogSumExp));
        Var<T> pw = ops::exp(ctx, ops::pick_reduce(ctx, logp, d.wrong, ops::SetReduce::LogSumExp));
        return mean(ops::add(ctx, pa, ops::scale(ctx, pw, T(-1))));
      }
      case MetricKind::Loss:
        return ops::scale(ctx, mean(ops::pick_reduce(ctx, ops::log_softmax(ctx, logits), d.answer, ops::SetReduce::LogSumExp)),
                          T(-1));
      case MetricKind::KL: {
        // KL(p_c || p) = (1/B) sum_b sum_v p_c (log p_c - log p), the difference taken before
        // the weighted sum: close to the clean run the terms are tiny and nothing cancels.
        require(d.clean_log_probs.size() == B * V, "kl metric: clean log-probabilities are missing");
        using Kernels = typename Ctx::backend;
        T* logp_clean = ctx.arena().template alloc<T>(B * V);  // [B, V]
        T* p_clean = ctx.arena().template alloc<T>(B * V);     // [B, V]
        Kernels::to_device(B * V, d.clean_log_probs.data(), logp_clean);
        Kernels::exp(B * V, logp_clean, p_clean);  // the backend's vectorised exp: every ACDC run evaluates it
        Var<T> gap = ops::add(ctx, Var<T>{logp_clean, {B, V}, nullptr}, ops::scale(ctx, ops::log_softmax(ctx, logits), T(-1)));
        Var<T> weighted = ops::mul(ctx, gap, Var<T>{p_clean, {B, V}, nullptr});  // [B, V]
        if (d.row_weights.empty()) return ops::scale(ctx, ops::sum(ctx, weighted), T(1) / T(B));
        return mean(ops::sum_last(ctx, weighted));
      }
      case MetricKind::L2: {
        require(d.clean_logits.size() == B * V, "l2 metric: the clean run's logits are missing");
        for (int o : d.outputs)
          require(o >= 0 && std::size_t(o) < V, "l2 metric: output dimension " + std::to_string(o) + " is outside the " +
                                                    std::to_string(V) + " logits");
        T* clean = ctx.arena().template alloc<T>(B * V);
        std::copy(d.clean_logits.begin(), d.clean_logits.end(), clean);
        Var<T> gap = ops::add(ctx, logits, ops::scale(ctx, Var<T>{clean, {B, V}, nullptr}, T(-1)));  // [B, V]
        Var<T> squared = ops::mul(ctx, gap, gap);
        std::vector<int> dims = d.outputs;
        if (dims.empty())
          for (std::size_t v = 0; v < V; ++v) dims.push_back(static_cast<int>(v));
        return mean(ops::pick_reduce(ctx, squared, std::vector<std::vector<int>>(B, dims), ops::SetReduce::Mean));
      }
    }
    throw Error("unknown metric");
  }
};

/// Whether a metric is a mean over examples of a value of each example alone, so that a task
/// may be evaluated a part at a time (task_examples in task/patching_task.hpp). Every builtin
/// metric is; specialise it to true for a metric of your own that is.
template <class Metric>
inline constexpr bool metric_is_mean_over_examples = false;
template <>
inline constexpr bool metric_is_mean_over_examples<BuiltinMetric> = true;

}  // namespace circuitry
