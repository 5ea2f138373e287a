#pragma once
// The CLI's task files: ids, or text fields tokenized with the model's tokenizer (a GGUF file's
// own, a directory's tokenizer.json or vocab.json + merges.txt) and else the embedded GPT-2 one.
// The tokenizer (a few hundred ms to build) is loaded only when a line has text without ids, so
// that a file `circuitry task` wrote (text and ids) reads with any model, whatever its tokenizer.
#include <filesystem>
#include <string>

#include <circuitry/io/read_file.hpp>
#include <circuitry/text/task.hpp>

#include "tokenizer_source.hpp"

namespace circuitry::cli {

inline Task read_cli_task(const std::filesystem::path& task_file, const std::string& model_dir, std::size_t vocab_size,
                          std::size_t n_positions) {
  const std::string content = io::read_regular_file(task_file);  // Error for a missing file or a directory
  const text::Tokenizer* tokenizer = nullptr;
  const TokenizerSource load_once = [&] {
    if (tokenizer == nullptr) tokenizer = &cli_tokenizer(model_dir);
    return tokenizer;
  };
  return task_from_text(content, task_file.string(), vocab_size, n_positions, load_once);
}

}  // namespace circuitry::cli
