#pragma once
// Test helper: a PyTorch-made fixture directory (tests/fixtures/<name>: config.json,
// model.safetensors, task.jsonl, expected.json) loaded as a model of the right architecture.
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include <circuitry/io/model_directory.hpp>
#include <circuitry/models/model.hpp>
#include <circuitry/task/metrics.hpp>
#include <circuitry/text/task.hpp>

namespace circuitry::testing {

using io::Checkpoint;
using io::load_model_directory;

template <class T>
struct Fixture {
  std::string dir;
  Checkpoint<T> checkpoint;
  Task task;
  nlohmann::json expected;

  explicit Fixture(const std::string& name)
      : dir(std::string(CIRCUITRY_FIXTURES_DIR) + "/" + name), checkpoint(load_model_directory<T>(dir)) {
    task = read_task(dir + "/task.jsonl", checkpoint.config.vocab_size, checkpoint.config.n_positions);
    std::ifstream in(dir + "/expected.json");
    expected = nlohmann::json::parse(in);
  }

  /// Calls f(model) with the fixture's model; List names the architectures a test unit
  /// instantiates (each one compiles everything f uses once more).
  template <class List = ArchitectureList<GPT2, AttnOnly>, class F>
  void with_model(F&& f) {
    with_architecture<List>(checkpoint.config, [&]<class Arch>() { f(Model<Arch, T>(checkpoint.config, checkpoint.weights)); });
  }

  Batch clean_batch() const { return batch(true); }
  Batch corrupted_batch() const { return batch(false); }
  Batch batch(bool clean) const {
    std::vector<std::vector<int>> seqs;
    for (const auto& e : task.examples) seqs.push_back(clean ? e.clean : e.corrupted);
    return Batch::from(seqs);
  }

  template <class M>
  MetricData<T> metric_data(const M& model) const {
    MetricData<T> d;
    for (const auto& e : task.examples) d.answer.push_back(e.answer), d.wrong.push_back(e.wrong);
    Arena arena;
    Context<T, false> ctx(arena);
    Var<T> logits = model.forward(ctx, clean_batch());
    d.clean_log_probs = log_softmax_rows(logits.value, logits.shape[0], logits.shape[1]);
    return d;
  }

  template <class M>
  double metric_of(const M& model, MetricKind kind, const Batch& batch) const {
    Arena arena;
    Context<T, false> ctx(arena);
    return BuiltinMetric{kind}(ctx, model.forward(ctx, batch), metric_data(model)).value[0];
  }
};

}  // namespace circuitry::testing
