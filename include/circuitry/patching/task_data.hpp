#pragma once
// A task ready for patching: clean and corrupted batches (right-padded), and what the
// metric needs (answer and wrong token sets, the clean run's log-probabilities for kl).
#include "circuitry/circuits/metrics.hpp"
#include "circuitry/models/model.hpp"
#include "circuitry/text/task.hpp"

namespace circuitry {

template <class T>
struct PatchingTask {
  Batch clean, corrupted;
  MetricData<T> data;
  std::vector<T> clean_logits;  // [batch, vocab] last-position logits of the clean run
};

template <class M, class T = typename M::scalar>
PatchingTask<T> make_patching_task(const M& model, const Task& task) {
  require(!task.examples.empty(), "the task has no examples");
  std::vector<std::vector<int>> clean, corrupted;
  PatchingTask<T> t;
  for (std::size_t i = 0; i < task.examples.size(); ++i) {
    const auto& e = task.examples[i];
    require(e.clean.size() == e.corrupted.size(), "task example " + std::to_string(i + 1) +
                                                      ": clean and corrupted must have equal length");
    require(!e.answer.empty() && !e.wrong.empty(),
            "task example " + std::to_string(i + 1) + ": the answer and wrong sets must each hold at least one token id");
    clean.push_back(e.clean);
    corrupted.push_back(e.corrupted);
    t.data.answer.push_back(e.answer);
    t.data.wrong.push_back(e.wrong);
  }
  t.clean = Batch::from(clean);
  t.corrupted = Batch::from(corrupted);
  Arena arena;
  Context<T, false> ctx(arena);
  Var<T> logits = model.forward(ctx, t.clean);
  t.clean_logits.assign(logits.value, logits.value + logits.numel());
  t.data.clean_log_probs = log_softmax_rows(logits.value, logits.shape[0], logits.shape[1]);
  return t;
}

/// M(logits) for a metric callable, without the tape. logits: [batch, vocab]
template <class T, class Metric>
double metric_value(const Metric& metric, const std::vector<T>& logits, const MetricData<T>& data) {
  Arena arena;
  Context<T, false> ctx(arena);
  const std::size_t B = data.answer.size();
  Var<T> l{const_cast<T*>(logits.data()), {B, logits.size() / B}, nullptr};
  return static_cast<double>(metric(ctx, l, data).value[0]);
}

}  // namespace circuitry
