#pragma once
// The Python package's view of a loaded model: one interface over every architecture and scalar
// type, so the bindings (bind_model.cpp) never instantiate the library's templates. ModelImpl
// (model_impl.hpp) implements it for one Model<Arch, T>; load_model.cpp compiles it once per
// scalar type, as the CLI compiles its model commands (apps/model_commands.hpp).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <circuitry/api/results.hpp>
#include <circuitry/circuits/acdc.hpp>
#include <circuitry/circuits/faithfulness_curve.hpp>
#include <circuitry/circuits/learned_mask.hpp>
#include <circuitry/circuits/method_comparison.hpp>
#include <circuitry/graph/graph.hpp>
#include <circuitry/models/config.hpp>
#include <circuitry/patching/attribution_by_name.hpp>
#include <circuitry/text/task.hpp>

namespace circuitry::python {

/// Called on the computing thread (without the GIL) after each unit of work: (done, total).
using Progress = std::function<void(std::size_t done, std::size_t total)>;

/// What every command that runs a model reads: the task, its metric and readout positions.
struct RunSpec {
  const Task* task = nullptr;
  MetricKind metric = MetricKind::LogitDiff;
  PositionMode positions = PositionMode::Last;
};

struct AcdcSpec {
  std::vector<double> thresholds;
  AcdcOptions options;  // mean_reference is set by the model
};

struct AcdcOutcome {
  AcdcSweep sweep;
  double clean_metric = 0;
};

/// One array per hook point, copied out of the run's arena: its shape and values (as double
/// for a float64 model, as float for a float32 one).
template <class T>
struct NamedArrays {
  std::map<std::string, std::vector<std::size_t>> shapes;
  std::map<std::string, std::vector<T>> values;
};

template <class T>
struct Recording {
  NamedArrays<T> activations, gradients;  // gradients: of the metric, on the clean run (empty unless asked)
  std::vector<T> logits;                  // the readout rows' logits [rows, vocab_out]
  std::size_t rows = 0;
};

class ModelHandle {
 public:
  virtual ~ModelHandle() = default;
  virtual const ModelConfig& config() const = 0;
  virtual const Graph& graph() const = 0;
  virtual bool is_float64() const = 0;

  virtual Attribution attribute(const RunSpec& run, const AttributionByName& request) const = 0;
  /// M(clean), M(every edge patched) and M(circuit) under `ablation` (mean: over the task's
  /// corrupted sequences, as the CLI).
  virtual api::CircuitEvaluation evaluate(const RunSpec& run, Ablation ablation, const std::vector<std::uint8_t>& in_graph) const = 0;
  virtual FaithfulnessCurve faithfulness_curve(const RunSpec& run, const std::vector<double>& scores) const = 0;
  virtual AcdcOutcome acdc(const RunSpec& run, AcdcSpec spec) const = 0;
  virtual PathPatchResult path_patch(const RunSpec& run, const std::vector<std::string>& senders,
                                     const std::vector<std::string>& receivers, bool recompute_mlps) const = 0;
  virtual PathSetResult path_set(const RunSpec& run, const std::vector<std::vector<std::string>>& paths) const = 0;
  /// Learned edge masks on the task's clean batch (options.metric is the faithfulness loss's; the
  /// mean ablation's reference is set by the model).
  virtual LearnedMask learn_mask(const RunSpec& run, LearnMaskOptions options) const = 0;
  virtual std::vector<MethodRoc> compare(const RunSpec& run, const std::vector<std::uint8_t>& truth, ComparisonOptions options) const = 0;

  /// The clean run of `sequences` (right-padded), recording the hook points named in `names`
  /// (empty: all). With `gradients`, the run is on the tape and the metric of `run` is
  /// differentiated (the task's clean sequences are then the input, `sequences` unused).
  virtual Recording<float> record_float(const std::vector<std::vector<int>>& sequences, const std::vector<std::string>& names,
                                        const RunSpec* gradients) const = 0;
  virtual Recording<double> record_double(const std::vector<std::vector<int>>& sequences, const std::vector<std::string>& names,
                                          const RunSpec* gradients) const = 0;
};

/// Reads whatever io::load_model_directory reads (Hugging Face and TransformerLens directories,
/// GGUF files) in float or double and picks its architecture.
std::shared_ptr<const ModelHandle> load_model_float(const std::filesystem::path& path);
std::shared_ptr<const ModelHandle> load_model_double(const std::filesystem::path& path);

}  // namespace circuitry::python
