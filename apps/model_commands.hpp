#pragma once
// The commands that run a model are the bulk of the executable's compile time: each is a
// template instantiated for every architecture and scalar type. apps/model_commands.cpp holds
// them with the loaders, compiled once per scalar type as a separate object (apps/CMakeLists.txt),
// so a build spreads them over the cores; this header is all that apps/circuitry.cpp sees of them.
#include <filesystem>

#include "cli_args.hpp"

namespace circuitry::cli {

enum class ModelCommand { forward, attribute, evaluate, path_patch, acdc, learn_mask, compare, discover, main_job };

/// One command on the model of --model (or, for the main job, `model_dir`).
struct ModelRun {
  ModelCommand command;
  const Args& args;
  std::filesystem::path model_dir;
};

/// Loads the model in scalar type T, picks its architecture and runs the command on it.
template <class T>
void run_model_command(const ModelRun& run);

}  // namespace circuitry::cli
