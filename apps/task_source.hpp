#pragma once
// The CLI's task files: ids, or text fields tokenized with the model directory's tokenizer
// (tokenizer.json, or vocab.json + merges.txt) and else the embedded GPT-2 one. The
// tokenizer (a few hundred ms to build) is loaded only for a file that has text fields.
#include <filesystem>
#include <string>

#include <circuitry/io/read_file.hpp>
#include <circuitry/text/task.hpp>

#include "tokenizer_source.hpp"

namespace circuitry::cli {

inline Task read_cli_task(const std::filesystem::path& task_file, const std::string& model_dir, std::size_t vocab_size,
                          std::size_t n_positions) {
  const std::string content = io::read_regular_file(task_file);  // Error for a missing file or a directory
  const bool has_text = content.find("_text\"") != std::string::npos;
  return task_from_text(content, task_file.string(), vocab_size, n_positions, has_text ? &cli_tokenizer(model_dir) : nullptr);
}

}  // namespace circuitry::cli
