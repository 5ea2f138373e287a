#pragma once
// Task files (DESIGN.md section 3): JSON Lines, one example a line,
//   {"clean": [ids], "corrupted": [ids], "answer": id, "wrong": id}
// Extra keys are allowed and ignored. Examples may differ in length from one another.
#include <algorithm>
#include <climits>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuitry/core/error.hpp"

namespace circuitry {

struct TaskExample {
  std::vector<int> clean, corrupted;  // token ids, equal length
  int answer = 0, wrong = 0;          // the metric compares these two tokens at the last position
};

struct Task {
  std::vector<TaskExample> examples;
};

namespace detail {

/// A token id: a non-negative integer below vocab_size (which read_task caps at INT_MAX + 1,
/// so every accepted id fits in int).
inline int read_token_id(const nlohmann::json& value, std::size_t vocab_size, const std::string& where,
                         const std::string& what) {
  if (!value.is_number_integer())
    throw Error(where + ": " + what + " must be an integer token id, got " + value.dump());
  if (!value.is_number_unsigned() || value.get<std::size_t>() >= vocab_size)
    throw Error(where + ": " + what + " = " + value.dump() + " is out of range; token ids must be in [0, " +
                std::to_string(vocab_size) + ") (the model's vocab_size)");
  return value.get<int>();
}

inline std::vector<int> read_token_ids(const nlohmann::json& value, std::size_t vocab_size, const std::string& where,
                                       const std::string& key) {
  if (!value.is_array()) throw Error(where + ": \"" + key + "\" must be an array of token ids, got " + value.dump());
  if (value.empty()) throw Error(where + ": \"" + key + "\" is empty; give at least one token id");
  std::vector<int> ids;
  ids.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i)
    ids.push_back(read_token_id(value[i], vocab_size, where, key + "[" + std::to_string(i) + "]"));
  return ids;
}

/// The value of a required key. A text variant ("clean_text") in its place is recognised and
/// explained: those need a tokenizer.
inline const nlohmann::json& required_key(const nlohmann::json& line, const std::string& where,
                                          const std::string& key) {
  const auto found = line.find(key);
  if (found != line.end()) return *found;
  if (line.contains(key + "_text"))
    throw Error(where + ": \"" + key +
                "_text\" needs a tokenizer, which circuitry does not have yet; give token ids in \"" + key +
                "\" instead");
  throw Error(where + ": missing key \"" + key +
              "\"; each line needs {\"clean\": [ids], \"corrupted\": [ids], \"answer\": id, \"wrong\": id}");
}

}  // namespace detail

/// Reads a task file, checking every example against the model: ids in [0, vocab_size),
/// clean and corrupted non-empty, of equal length and at most n_positions long. Blank lines are
/// skipped; a file without examples is an error.
inline Task read_task(const std::filesystem::path& path, std::size_t vocab_size, std::size_t n_positions) {
  const std::string file = path.string();
  std::ifstream in(path);
  if (!in) {
    std::error_code ec;
    throw Error(file +
                (std::filesystem::exists(path, ec) ? ": cannot open the file for reading" : ": file does not exist"));
  }
  vocab_size = std::min<std::size_t>(vocab_size, std::size_t{INT_MAX} + 1);
  Task task;
  std::string line;
  for (std::size_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = file + " line " + std::to_string(number);
    nlohmann::json json;
    try {
      json = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(where + ": not valid JSON (error at column " + std::to_string(e.byte) +
                  "); each line must be one JSON object like {\"clean\": [1, 2], \"corrupted\": [1, 3], \"answer\": 4, "
                  "\"wrong\": 5}");
    }
    if (!json.is_object()) throw Error(where + ": expected a JSON object, got " + std::string(json.type_name()));

    TaskExample example;
    example.clean = detail::read_token_ids(detail::required_key(json, where, "clean"), vocab_size, where, "clean");
    example.corrupted =
        detail::read_token_ids(detail::required_key(json, where, "corrupted"), vocab_size, where, "corrupted");
    example.answer = detail::read_token_id(detail::required_key(json, where, "answer"), vocab_size, where, "answer");
    example.wrong = detail::read_token_id(detail::required_key(json, where, "wrong"), vocab_size, where, "wrong");
    if (example.clean.size() != example.corrupted.size())
      throw Error(where + ": clean has " + std::to_string(example.clean.size()) + " tokens but corrupted has " +
                  std::to_string(example.corrupted.size()) + "; clean and corrupted must have equal length");
    if (example.clean.size() > n_positions)
      throw Error(where + ": the example has " + std::to_string(example.clean.size()) +
                  " tokens but the model's context is n_positions = " + std::to_string(n_positions) + "; shorten it");
    task.examples.push_back(std::move(example));
  }
  if (task.examples.empty())
    throw Error(file + ": no examples (the file is empty or has only blank lines); write one JSON object per line");
  return task;
}

/// Writes one example a line, in the format read_task reads.
inline void write_task(const std::filesystem::path& path, const Task& task) {
  std::ofstream out(path);
  if (!out) throw Error(path.string() + ": cannot open the file for writing (does the directory exist?)");
  for (const TaskExample& example : task.examples) {
    const nlohmann::ordered_json line = {{"clean", example.clean},
                                         {"corrupted", example.corrupted},
                                         {"answer", example.answer},
                                         {"wrong", example.wrong}};
    out << line.dump() << '\n';
  }
  if (!out) throw Error(path.string() + ": writing failed (disk full?)");
}

}  // namespace circuitry
