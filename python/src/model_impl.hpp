#pragma once
// ModelHandle for one Model<Arch, T>: each command does what the CLI's does
// (apps/model_command_bodies.hpp), on a task already read, so that the numbers are the CLI's.
#include <algorithm>
#include <string>
#include <type_traits>
#include <utility>

#include <circuitry/circuitry.hpp>

#include "model_handle.hpp"

namespace circuitry::python {

/// Ids outside the model's vocabulary or sequences longer than its context, refused as the
/// task reader refuses them (a task from Python is read before any model is known).
inline void check_task_fits(const Task& task, const ModelConfig& config) {
  for (std::size_t i = 0; i < task.examples.size(); ++i) {
    const TaskExample& e = task.examples[i];
    const std::string where = "task example " + std::to_string(i + 1);
    require(e.clean.size() <= config.n_positions, where + ": " + std::to_string(e.clean.size()) +
                                                      " tokens, longer than the model's context (n_positions = " +
                                                      std::to_string(config.n_positions) + ")");
    auto check = [&](const std::vector<int>& ids, const char* key) {
      for (std::size_t k = 0; k < ids.size(); ++k)
        require(ids[k] >= 0 && std::size_t(ids[k]) < config.vocab_size,
                where + ": " + key + "[" + std::to_string(k) + "] = " + std::to_string(ids[k]) +
                    " is out of range for the model's vocabulary of " + std::to_string(config.vocab_size) + " tokens");
    };
    check(e.clean, "clean"), check(e.corrupted, "corrupted"), check(e.answer, "answer"), check(e.wrong, "wrong");
  }
}

template <class Arch, class T>
class ModelImpl final : public ModelHandle {
 public:
  using M = Model<Arch, T>;
  explicit ModelImpl(io::Checkpoint<T>&& checkpoint)
      : model_(checkpoint.config, std::move(checkpoint.weights)), graph_(model_.graph()) {}

  const ModelConfig& config() const override { return model_.config(); }
  const Graph& graph() const override { return graph_; }
  bool is_float64() const override { return std::is_same_v<T, double>; }

  Attribution attribute(const RunSpec& run, const AttributionByName& request) const override {
    return attribute_by_name(model_, patching_task(run), BuiltinMetric{run.metric}, request);
  }

  api::CircuitEvaluation evaluate(const RunSpec& run, Ablation ablation, const std::vector<std::uint8_t>& in_graph) const override {
    return api::evaluate_circuit_against_references(model_, patching_task(run), run.metric, ablation, in_graph);
  }

  FaithfulnessCurve faithfulness_curve(const RunSpec& run, const std::vector<double>& scores) const override {
    return circuitry::faithfulness_curve(model_, patching_task(run), BuiltinMetric{run.metric}, scores);
  }

  AcdcOutcome acdc(const RunSpec& run, AcdcSpec spec) const override {
    const auto task = patching_task(run);
    spec.options.mean_reference = &task.corrupted;
    const Acdc<M, T> acdc_run(model_, task, run.metric, spec.options);
    AcdcOutcome r;
    r.sweep = acdc_run.sweep(spec.thresholds);
    r.clean_metric = acdc_run.distance().clean_metric;
    return r;
  }

  PathPatchResult path_patch(const RunSpec& run, const std::vector<std::string>& senders, const std::vector<std::string>& receivers,
                             bool recompute_mlps) const override {
    return circuitry::path_patch(model_, patching_task(run), BuiltinMetric{run.metric}, senders, receivers, recompute_mlps);
  }

  PathSetResult path_set(const RunSpec& run, const std::vector<std::vector<std::string>>& paths) const override {
    return evaluate_path_set(model_, patching_task(run), paths, run.metric);
  }

  LearnedMask learn_mask(const RunSpec& run, LearnMaskOptions options) const override {
    const auto task = patching_task(run);
    options.mean_reference = &task.corrupted;
    return circuitry::learn_mask(model_, task, options);
  }

  std::vector<MethodRoc> compare(const RunSpec& run, const std::vector<std::uint8_t>& truth, ComparisonOptions options) const override {
    const auto task = patching_task(run);
    options.acdc.mean_reference = &task.corrupted;
    return compare_methods(model_, task, truth, options);
  }

  Recording<float> record_float(const std::vector<std::vector<int>>& sequences, const std::vector<std::string>& names,
                                const RunSpec* gradients) const override {
    if constexpr (std::is_same_v<T, float>) return record(sequences, names, gradients);
    else throw Error("internal: a float64 model records float64 arrays");
  }
  Recording<double> record_double(const std::vector<std::vector<int>>& sequences, const std::vector<std::string>& names,
                                  const RunSpec* gradients) const override {
    if constexpr (std::is_same_v<T, double>) return record(sequences, names, gradients);
    else throw Error("internal: a float32 model records float32 arrays");
  }

 private:
  PatchingTask<T> patching_task(const RunSpec& run) const {
    check_task_fits(*run.task, model_.config());
    return make_patching_task(model_, *run.task, run.positions);
  }

  Recording<T> record(const std::vector<std::vector<int>>& sequences, const std::vector<std::string>& names, const RunSpec* gradients) const {
    Recording<T> r;
    Arena arena;
    std::map<std::string, Var<T>> activations;
    ForwardOptions<T> o;
    o.activations = &activations;
    auto keep = [&](const std::map<std::string, Var<T>>& found, auto&& value_of, NamedArrays<T>& out) {
      for (const auto& [name, var] : found) {
        if (!names.empty() && std::find(names.begin(), names.end(), name) == names.end()) continue;
        const T* v = value_of(var);
        out.shapes[name] = std::vector<std::size_t>(var.shape.dims.begin(), var.shape.dims.begin() + var.shape.rank);
        out.values[name].assign(v, v + var.numel());
      }
    };
    auto check_names = [&] {
      for (const std::string& name : names)
        require(activations.count(name), "no hook point named '" + name + "' in this model (TransformerLens names such as " +
                                             "blocks.0.hook_resid_pre, blocks.0.attn.hook_pattern, blocks.0.hook_mlp_out)");
    };
    auto keep_logits = [&](const Var<T>& logits) {
      r.rows = logits.shape[0];
      r.logits.assign(logits.value, logits.value + logits.numel());
    };
    if (gradients) {
      const PatchingTask<T> task = patching_task(*gradients);
      Tape<T> tape(arena);
      Context<T, true> ctx(arena, tape);
      const Var<T> logits = model_.forward(ctx, task.clean, o);
      tape.backward(BuiltinMetric{gradients->metric}(ctx, logits, task.data));
      check_names();
      keep_logits(logits);
      keep(activations, [](const Var<T>& v) { return v.value; }, r.activations);
      std::map<std::string, Var<T>> with_gradient;
      for (const auto& [name, var] : activations)
        if (tape.grad(var)) with_gradient[name] = var;
      keep(with_gradient, [&](const Var<T>& v) { return tape.grad(v); }, r.gradients);
    } else {
      require(!sequences.empty(), "give at least one sequence of token ids");
      Task as_task;  // the same checks of ids and length as a task's
      for (const auto& s : sequences) as_task.examples.push_back({s, s, {}, {}});
      check_task_fits(as_task, model_.config());
      Context<T, false> ctx(arena);
      const Var<T> logits = model_.forward(ctx, Batch::from(sequences), o);
      check_names();
      keep_logits(logits);
      keep(activations, [](const Var<T>& v) { return v.value; }, r.activations);
    }
    return r;
  }

  M model_;
  Graph graph_;
};

}  // namespace circuitry::python
