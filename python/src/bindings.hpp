#pragma once
// The parts of the extension module (module.cpp calls each) and what they share.
#include <memory>

#include <nanobind/nanobind.h>

#include <circuitry/text/tokenizer.hpp>

namespace circuitry::python {

namespace nb = nanobind;

void bind_text(nb::module_& m);   // tokenizers, tasks, the task generators (bind_text.cpp)
void bind_graph(nb::module_& m);  // graphs, pruning, circuits, ground truths, ROC (bind_graph.cpp)
void bind_model(nb::module_& m);  // models and every command that runs one (bind_model.cpp)
void bind_registry(nb::module_& m);  // the names users choose among (bind_registry.cpp)

/// GPT-2's vocabulary, built into the extension: the tokenizer of tasks when none is given (as the CLI's).
std::shared_ptr<text::Tokenizer> gpt2_tokenizer();

}  // namespace circuitry::python
