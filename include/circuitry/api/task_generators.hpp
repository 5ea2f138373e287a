#pragma once
// The task generators by name (api/registry.hpp's task_generators()): `circuitry task KIND` and
// Python's circuitry.tasks.KIND(...) both run generate_task.
#include <string>
#include <vector>

#include "circuitry/api/registry.hpp"
#include "circuitry/text/docstring.hpp"
#include "circuitry/text/greater_than.hpp"
#include "circuitry/text/induction_text.hpp"
#include "circuitry/text/ioi.hpp"
#include "circuitry/text/text_example.hpp"

namespace circuitry::api {

struct GeneratedTask {
  std::vector<text::TextExample> examples;
  std::string lines;                 // the task file's lines: text, ids and the generator's keys
  std::vector<std::string> skipped;  // words of the generator's lists that are not one token of the tokenizer
};

/// n examples of the generator `kind` for `tokenizer`, from `seed`.
inline GeneratedTask generate_task(const std::string& kind, std::size_t n, unsigned seed, const text::Tokenizer& tokenizer) {
  find_choice(task_generators(), kind, "task");
  require(n > 0, kind + ": the number of examples must be positive");
  GeneratedTask t;
  if (kind == "ioi") t.examples = text::make_ioi(n, seed, tokenizer, &t.skipped);
  else if (kind == "greater-than") t.examples = text::make_greater_than(n, seed, tokenizer, &t.skipped);
  else if (kind == "docstring") t.examples = text::make_docstring(n, seed, tokenizer, &t.skipped);
  else t.examples = text::make_induction_text(n, seed, tokenizer, 10, 2, &t.skipped);
  t.lines = text::text_task_lines(t.examples, tokenizer);
  return t;
}

}  // namespace circuitry::api
