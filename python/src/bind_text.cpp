// Tokenizers, tasks (from JSON Lines text, files or the generators) and their conversions.
#include <climits>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>

#include <circuitry/api/task_generators.hpp>
#include <circuitry/io/read_file.hpp>
#include <circuitry/text/bpe_tokenizer.hpp>
#include <circuitry/text/load_tokenizer.hpp>
#include <circuitry/text/task.hpp>
#include <circuitry/text/text_example.hpp>

#include "bindings.hpp"
#include "embedded_tokenizer.hpp"

namespace circuitry::python {

std::shared_ptr<text::Tokenizer> gpt2_tokenizer() {
  namespace e = embedded_tokenizer;
  static const std::shared_ptr<text::Tokenizer> tokenizer = std::make_shared<text::ByteLevelBpeTokenizer>(
      text::ByteLevelBpeTokenizer::from_strings(std::string_view(reinterpret_cast<const char*>(e::vocab_json), e::vocab_json_size),
                                                std::string_view(reinterpret_cast<const char*>(e::merges_txt), e::merges_txt_size),
                                                "the built-in GPT-2 vocabulary"));
  return tokenizer;
}

namespace {

/// A task read before any model is known: every id the format allows and any length; the model
/// checks its own vocabulary and context when it runs the task (model_impl.hpp).
Task task_from_jsonl(const std::string& content, const std::string& name, std::shared_ptr<text::Tokenizer> tokenizer) {
  // As the CLI: the tokenizer is needed only by lines with text and no ids, then GPT-2's by default.
  const TokenizerSource source = [&tokenizer] {
    if (!tokenizer) tokenizer = gpt2_tokenizer();
    return tokenizer.get();
  };
  return task_from_text(content, name, std::size_t{INT_MAX} + 1, std::numeric_limits<std::size_t>::max(), source);
}

std::string task_jsonl(const Task& task) {
  std::ostringstream out;
  write_task(out, task);
  return out.str();
}

nb::dict example_dict(const TaskExample& e) {
  nb::dict d;
  d["clean"] = e.clean;
  d["corrupted"] = e.corrupted;
  if (!e.answer.empty()) d["answer"] = e.answer;
  if (!e.wrong.empty()) d["wrong"] = e.wrong;
  return d;
}

/// `circuitry task KIND`: the generated examples as the lines the CLI writes (text, ids and the
/// generator's keys), and the words of its lists the tokenizer splits (left out).
std::pair<std::string, std::vector<std::string>> generate(const std::string& kind, std::size_t n, unsigned seed,
                                                          std::shared_ptr<text::Tokenizer> tokenizer) {
  if (!tokenizer) tokenizer = gpt2_tokenizer();
  api::GeneratedTask task = api::generate_task(kind, n, seed, *tokenizer);
  return {std::move(task.lines), std::move(task.skipped)};
}

}  // namespace

void bind_text(nb::module_& m) {
  nb::class_<text::Tokenizer>(m, "Tokenizer", "A tokenizer: byte-level BPE or SentencePiece BPE, id for id as Hugging Face tokenizers.")
      .def("encode", &text::Tokenizer::encode, nb::arg("text"), "Token ids of a text (no BOS added).")
      .def("encode_continuation", &text::Tokenizer::encode_continuation, nb::arg("text"),
           "Token ids of a text that follows other text (no SentencePiece space prefix).")
      .def("decode", &text::Tokenizer::decode, nb::arg("ids"), "The text of token ids.")
      .def("token_text", &text::Tokenizer::token_text, nb::arg("id"), "The text of one token.")
      .def_prop_ro("vocab_size", &text::Tokenizer::vocab_size)
      .def_prop_ro("bos", &text::Tokenizer::bos, "The BOS id put before a task's text, or None.");
  m.def("load_tokenizer", [](const std::string& path) { return std::shared_ptr<text::Tokenizer>(text::load_tokenizer(path)); },
        nb::arg("path"), "The tokenizer of a GGUF file or a directory (tokenizer.json, or vocab.json + merges.txt).");
  m.def("gpt2_tokenizer", &gpt2_tokenizer, "GPT-2's tokenizer (its vocabulary is built in).");

  nb::class_<Task>(m, "Task", nb::dynamic_attr(), "Clean and corrupted token sequences with answer and wrong sets (DESIGN.md section 3).")
      .def("__len__", [](const Task& t) { return t.examples.size(); })
      .def_prop_ro("examples", [](const Task& t) {
        nb::list l;
        for (const TaskExample& e : t.examples) l.append(example_dict(e));
        return l;
      }, "One dict per example: clean, corrupted, answer, wrong (ids).")
      .def_prop_ro("outputs", [](const Task& t) { return t.outputs; }, "The output dimensions l2 reads (empty: all).")
      .def("to_jsonl", &task_jsonl, "The task in the task-file format (ids), one line per example.");
  m.def("task_from_jsonl", &task_from_jsonl, nb::arg("content"), nb::arg("name"), nb::arg("tokenizer").none(),
        "A task from task-file lines; text fields are tokenized with `tokenizer` (None: GPT-2's).");
  m.def("read_task", [](const std::string& path, std::shared_ptr<text::Tokenizer> tokenizer) {
    return task_from_jsonl(io::read_regular_file(path), path, std::move(tokenizer));
  }, nb::arg("path"), nb::arg("tokenizer").none(), "A task file (JSON Lines).");
  m.def("generate_task", &generate, nb::arg("kind"), nb::arg("n"), nb::arg("seed"), nb::arg("tokenizer").none(),
        "The lines `circuitry task KIND --n N --seed S` writes, and the list words left out.");
}

}  // namespace circuitry::python
