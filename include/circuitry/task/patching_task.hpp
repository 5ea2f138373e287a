#pragma once
// A task ready for patching: clean and corrupted batches (right-padded), and what the
// metric needs (answer and wrong token sets, the clean run's logits and log-probabilities for l2 and kl),
// read at each example's last position or, in position mode `all`, at every position after the first.
#include <algorithm>
#include <string>
#include <type_traits>

#include "circuitry/models/model.hpp"
#include "circuitry/task/metrics.hpp"
#include "circuitry/text/task.hpp"

namespace circuitry {

/// Where metrics read the logits (DESIGN.md section 2).
enum class PositionMode { Last, All };

inline PositionMode parse_position_mode(const std::string& name) {
  if (name == "last") return PositionMode::Last;
  if (name == "all") return PositionMode::All;
  throw Error("unknown position mode '" + name + "' (choose last, each example's last position, or all, every position after the first)");
}

template <class T>
struct PatchingTask {
  Batch clean, corrupted;  // both read their logits at the same readout rows
  MetricData<T> data;
  std::vector<T> clean_logits;  // [readout rows, vocab] logits of the clean run
};

template <class M, class T = typename M::scalar>
PatchingTask<T> make_patching_task(const M& model, const Task& task, PositionMode mode = PositionMode::Last) {
  require(!task.examples.empty(), "the task has no examples");
  std::vector<std::vector<int>> clean, corrupted;
  PatchingTask<T> t;
  for (std::size_t i = 0; i < task.examples.size(); ++i) {
    const auto& e = task.examples[i];
    require(e.clean.size() == e.corrupted.size(), "task example " + std::to_string(i + 1) +
                                                      ": clean and corrupted must have equal length");
    clean.push_back(e.clean);
    corrupted.push_back(e.corrupted);
  }
  t.clean = Batch::from(clean);
  t.corrupted = Batch::from(corrupted);
  if (mode == PositionMode::All) t.clean.read_all_positions(), t.corrupted.read_all_positions();
  // The metric's data per readout row: each example's sets on each of its rows.
  const std::size_t B = t.clean.batch, R = t.clean.readout.size();
  bool uneven = false;
  for (std::size_t r = 0; r < R; ++r) {
    const std::size_t b = t.clean.readout[r] / t.clean.pos;
    t.data.answer.push_back(task.examples[b].answer);
    t.data.wrong.push_back(task.examples[b].wrong);
    uneven = uneven || t.clean.length(b) != t.clean.length(0);
  }
  if (mode == PositionMode::All && uneven)
    for (std::size_t r = 0; r < R; ++r)
      t.data.row_weights.push_back(T(1) / T(B * (t.clean.length(t.clean.readout[r] / t.clean.pos) - 1)));
  t.data.rows = R;
  t.data.outputs = task.outputs;
  for (int o : task.outputs)
    require(o >= 0 && std::size_t(o) < model.config().n_outputs(),
            "the task's \"outputs\" names dimension " + std::to_string(o) + " but the model has " +
                std::to_string(model.config().n_outputs()) + " logits");
  ArenaFor<M> arena;
  ContextFor<M> ctx(arena);
  Var<T> logits = model.forward(ctx, t.clean);
  t.clean_logits.resize(logits.numel());
  M::backend::to_host(logits.numel(), logits.value, t.clean_logits.data());
  t.data.clean_log_probs = log_softmax_rows(t.clean_logits.data(), logits.shape[0], logits.shape[1]);
  t.data.clean_logits = t.clean_logits;
  return t;
}

/// Examples [first, last) of a task as a task of their own, whose metric is the mean over those
/// examples: for a metric that is a mean over examples (metric_is_mean_over_examples),
///   M(task) = sum over a partition into parts of (examples in part / examples) * M(part),
/// and so are its gradients; attribution patching runs large tasks a part at a time this way.
template <class T>
PatchingTask<T> task_examples(const PatchingTask<T>& task, std::size_t first, std::size_t last) {
  PatchingTask<T> part;
  part.clean = task.clean.sequences(first, last);
  part.corrupted = task.corrupted.sequences(first, last);
  // The readout rows are grouped by sequence, in order: the part's rows are one contiguous range.
  const auto row_of = [&](std::size_t b) {
    return static_cast<std::size_t>(std::lower_bound(task.clean.readout.begin(), task.clean.readout.end(), b * task.clean.pos) -
                                    task.clean.readout.begin());
  };
  const std::size_t r0 = row_of(first), r1 = row_of(last), V = task.data.rows ? task.clean_logits.size() / task.data.rows : 0;
  const auto rows = [&](const auto& v, std::size_t width) {
    using V_ = std::decay_t<decltype(v)>;
    if (v.empty()) return V_{};
    return V_(v.begin() + static_cast<std::ptrdiff_t>(r0 * width), v.begin() + static_cast<std::ptrdiff_t>(r1 * width));
  };
  part.data.rows = r1 - r0;
  part.data.answer = rows(task.data.answer, 1);
  part.data.wrong = rows(task.data.wrong, 1);
  part.data.clean_log_probs = rows(task.data.clean_log_probs, V);
  part.data.clean_logits = rows(task.data.clean_logits, V);
  part.data.outputs = task.data.outputs;
  part.data.row_weights = rows(task.data.row_weights, 1);  // 1 / (examples * rows of its example) ...
  for (T& w : part.data.row_weights) w *= T(task.clean.batch) / T(last - first);  // ... of the part
  part.clean_logits = rows(task.clean_logits, V);
  return part;
}

/// M(logits) for a metric callable, without the tape. logits: [readout rows, vocab]
template <class T, class Metric>
double metric_value(const Metric& metric, const std::vector<T>& logits, const MetricData<T>& data) {
  Arena arena;
  Context<T, false> ctx(arena);
  Var<T> l{const_cast<T*>(logits.data()), {data.rows, logits.size() / data.rows}, nullptr};
  return static_cast<double>(metric(ctx, l, data).value[0]);
}

}  // namespace circuitry
