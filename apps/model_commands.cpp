// The model commands in one scalar type, CIRCUITRY_CLI_SCALAR, for every registered
// architecture (apps/CMakeLists.txt compiles this file once for float and once for double, as two
// objects that build in parallel). Splitting by scalar rather than by architecture keeps each
// scalar's kernels (Eigen's, the ops', the loaders') in one object only: split by architecture,
// eight objects took three times the compile time of one.
#include <type_traits>

#include "main_job.hpp"
#include "model_command_bodies.hpp"
#include "model_commands.hpp"

namespace circuitry::cli {

namespace {
template <class Arch, class T>
void run_on(const ModelRun& run, io::Checkpoint<T>&& checkpoint) {
  const Model<Arch, T> model(checkpoint.config, std::move(checkpoint.weights));
  const Args& a = run.args;
  switch (run.command) {
    case ModelCommand::forward: return forward_on(a, model);
    case ModelCommand::attribute: return attribute_on(a, model);
    case ModelCommand::evaluate: return evaluate_on(a, model);
    case ModelCommand::path_patch: return path_patch_on(a, model);
    case ModelCommand::acdc: return acdc_on(a, model);
    case ModelCommand::learn_mask: return learn_mask_on(a, model);
    case ModelCommand::compare: return compare_on(a, model);
    case ModelCommand::discover:
    case ModelCommand::main_job:
      if constexpr (std::is_same_v<T, float>) {  // the discovery pipeline runs in float32
        if (run.command == ModelCommand::discover) return discover_on(a, model);
        return main_job_on(a, model, run.model_dir);
      }
      break;
  }
  throw Error("this command does not run in this dtype");
}
}  // namespace

template <class T>
void run_model_command(const ModelRun& run) {
  // The main job reads the GPT-2 layout (its shipped model); every other command any model directory.
  auto checkpoint = run.command == ModelCommand::main_job ? io::load_checkpoint<T>(run.model_dir) : io::load_model_directory<T>(run.model_dir);
  with_architecture(checkpoint.config, [&]<class Arch>() { run_on<Arch, T>(run, std::move(checkpoint)); });
}

template void run_model_command<CIRCUITRY_CLI_SCALAR>(const ModelRun&);

}  // namespace circuitry::cli
