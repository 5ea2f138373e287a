#pragma once
// Metrics M (DESIGN.md section 2): the mean over examples of a per-example value at the
// last position of the clean sequence. The answer A and the wrong set W of an example are
// each one token id or a non-empty set of ids:
//   logit_diff     = mean_{a in A} logit[a] - mean_{w in W} logit[w]   (IOI: IO minus S)
//   prob_diff      = sum_{a in A} p[a] - sum_{w in W} p[w]             (Greater-Than)
//   logit_diff_max = mean_{a in A} logit[a] - max_{w in W} logit[w]    (docstring)
//   kl             = KL(p_clean || p_run)
//   loss           = -log sum_{a in A} p[a]
// With one id each these are the single-token definitions, bit for bit (ops::pick_reduce).
// A metric is any callable (ctx, logits [batch, vocab], MetricData) -> scalar Var built
// from ops, so gradients flow through it on the tape; BuiltinMetric is one such callable.
#include <cmath>
#include <string>
#include <vector>

#include "circuitry/core/ops.hpp"

namespace circuitry {

enum class MetricKind { LogitDiff, ProbDiff, KL, Loss, LogitDiffMax };

inline MetricKind parse_metric(const std::string& name) {
  if (name == "logit_diff") return MetricKind::LogitDiff;
  if (name == "prob_diff") return MetricKind::ProbDiff;
  if (name == "kl") return MetricKind::KL;
  if (name == "loss") return MetricKind::Loss;
  if (name == "logit_diff_max") return MetricKind::LogitDiffMax;
  throw Error("unknown metric '" + name + "' (choose logit_diff, prob_diff, logit_diff_max, kl or loss)");
}

inline std::string metric_name(MetricKind k) {
  switch (k) {
    case MetricKind::LogitDiff: return "logit_diff";
    case MetricKind::ProbDiff: return "prob_diff";
    case MetricKind::KL: return "kl";
    case MetricKind::Loss: return "loss";
    case MetricKind::LogitDiffMax: return "logit_diff_max";
  }
  return "?";
}

/// What a metric may read besides the run's logits.
template <class T>
struct MetricData {
  std::vector<std::vector<int>> answer, wrong;  // per example: the answer set A and the wrong set W
  std::vector<T> clean_log_probs;       // [batch, vocab]: log-softmax of the clean run (for kl)
};

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
    switch (kind) {
      case MetricKind::LogitDiff:
        return ops::mean(ctx, ops::add(ctx, ops::pick_reduce(ctx, logits, d.answer, ops::SetReduce::Mean),
                                       ops::scale(ctx, ops::pick_reduce(ctx, logits, d.wrong, ops::SetReduce::Mean), T(-1))));
      case MetricKind::LogitDiffMax:
        return ops::mean(ctx, ops::add(ctx, ops::pick_reduce(ctx, logits, d.answer, ops::SetReduce::Mean),
                                       ops::scale(ctx, ops::pick_reduce(ctx, logits, d.wrong, ops::SetReduce::Max), T(-1))));
      case MetricKind::ProbDiff: {
        // p(A) = sum_{a in A} p[a] = exp(logsumexp_{a in A} log p[a])
        Var<T> logp = ops::log_softmax(ctx, logits);
        Var<T> pa = ops::exp(ctx, ops::pick_reduce(ctx, logp, d.answer, ops::SetReduce::LogSumExp));
        Var<T> pw = ops::exp(ctx, ops::pick_reduce(ctx, logp, d.wrong, ops::SetReduce::LogSumExp));
        return ops::mean(ctx, ops::add(ctx, pa, ops::scale(ctx, pw, T(-1))));
      }
      case MetricKind::Loss:
        return ops::scale(
            ctx, ops::mean(ctx, ops::pick_reduce(ctx, ops::log_softmax(ctx, logits), d.answer, ops::SetReduce::LogSumExp)), T(-1));
      case MetricKind::KL: {
        // KL(p_c || p) = (1/B) sum_b sum_v p_c (log p_c - log p), the difference taken before
        // the weighted sum: close to the clean run the terms are tiny and nothing cancels.
        require(d.clean_log_probs.size() == B * V, "kl metric: clean log-probabilities are missing");
        T* logp_clean = ctx.arena().template alloc<T>(B * V);
        T* p_clean = ctx.arena().template alloc<T>(B * V);
        for (std::size_t i = 0; i < B * V; ++i) {
          logp_clean[i] = d.clean_log_probs[i];
          p_clean[i] = std::exp(logp_clean[i]);
        }
        Var<T> gap = ops::add(ctx, Var<T>{logp_clean, {B, V}, nullptr}, ops::scale(ctx, ops::log_softmax(ctx, logits), T(-1)));
        return ops::scale(ctx, ops::sum(ctx, ops::mul(ctx, gap, Var<T>{p_clean, {B, V}, nullptr})), T(1) / T(B));
      }
    }
    throw Error("unknown metric");
  }
};

}  // namespace circuitry
