#pragma once
// Task files (DESIGN.md section 3): JSON Lines, one example a line,
//   {"clean": [ids], "corrupted": [ids], "answer": id or [ids], "wrong": id or [ids]}
// or the same as text, tokenized with the model's tokenizer (bpe_tokenizer.hpp):
//   {"clean_text": "...", "corrupted_text": "...", "answer_text": " Mary" or [...], "wrong_text": ...}
// Each key may come as ids or as text; where a line has both (the files `circuitry task`
// writes), the ids are read and the text is documentation, so such a file needs no tokenizer
// (the tokenizer is asked for only by a line whose ids are missing). A clean or corrupted text
// starts with the model's BOS where its tokenizer puts one (tokenizer.hpp, bos()). Extra keys
// are allowed and ignored. Examples may differ in length from one another.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuitry/core/error.hpp"
#include "circuitry/io/json_parse.hpp"
#include "circuitry/io/read_file.hpp"
#include "circuitry/text/bpe_tokenizer.hpp"
#include "circuitry/text/tokenizer.hpp"

namespace circuitry {

struct TaskExample {
  std::vector<int> clean, corrupted;  // token ids, equal length
  std::vector<int> answer, wrong;     // the answer set A and the wrong set W (one id each for single-token
                                      // tasks); both empty in tasks for answer-free metrics (kl, l2)
};

struct Task {
  std::vector<TaskExample> examples;
  std::vector<int> outputs;  // the output dimensions the l2 metric reads ("outputs"; empty: all)
};

/// The tokenizer for a task's text fields, asked for when a line first needs one (a tokenizer
/// takes a few hundred ms to build, and a model's may not be readable at all); nullptr for none.
using TokenizerSource = std::function<const text::Tokenizer*()>;

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

/// An answer or wrong set: one id, or a non-empty list of ids.
inline std::vector<int> read_token_set(const nlohmann::json& value, std::size_t vocab_size, const std::string& where,
                                       const std::string& key) {
  if (value.is_array()) {
    if (value.empty()) throw Error(where + ": \"" + key + "\" is an empty list; give one token id or a non-empty list of ids");
    return read_token_ids(value, vocab_size, where, key);
  }
  return {read_token_id(value, vocab_size, where, key)};
}

/// "s" as a JSON string literal, for messages.
inline std::string quoted(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);  // a token may be part of a character
}

/// The ids of a text, each checked against the model's vocabulary. Tokenizer errors (invalid
/// UTF-8) are reported with the line and the key. `continuation`: the text follows other text
/// (an answer after its prompt; tokenizer.hpp, encode_continuation).
inline std::vector<int> tokenize_text(const text::Tokenizer& tokenizer, const std::string& text, std::size_t vocab_size,
                                      const std::string& where, const std::string& key, bool continuation = false) {
  std::vector<int> ids;
  try {
    ids = continuation ? tokenizer.encode_continuation(text) : tokenizer.encode(text);
  } catch (const Error& e) {
    throw Error(where + ": \"" + key + "\": " + e.what());
  }
  for (int id : ids)
    if (static_cast<std::size_t>(id) >= vocab_size)
      throw Error(where + ": \"" + key + "\" tokenizes to id " + std::to_string(id) + " (" + quoted(tokenizer.token_text(id)) +
                  "), outside the model's vocab_size " + std::to_string(vocab_size) + "; is this the model's tokenizer?");
  return ids;
}

/// The one token of an answer or wrong text, read as it follows the prompt; anything else is an
/// error that shows how the text tokenizes.
inline int single_token(const text::Tokenizer& tokenizer, const std::string& text, std::size_t vocab_size,
                        const std::string& where, const std::string& key) {
  const std::vector<int> ids = tokenize_text(tokenizer, text, vocab_size, where, key, true);
  if (ids.size() == 1) return ids[0];
  std::string pieces;
  for (std::size_t i = 0; i < ids.size(); ++i)
    pieces += (i ? ", " : "") + quoted(tokenizer.token_text(ids[i])) + " (" + std::to_string(ids[i]) + ")";
  throw Error(where + ": \"" + key + "\" " + quoted(text) + " is " + std::to_string(ids.size()) + " tokens" +
              (ids.empty() ? "" : " [" + pieces + "]") +
              "; each answer or wrong text must be exactly one token (GPT-2 words usually carry their leading space)");
}

/// A text set: one string or a non-empty list of strings, each exactly one token.
inline std::vector<int> read_text_set(const nlohmann::json& value, const text::Tokenizer& tokenizer, std::size_t vocab_size,
                                      const std::string& where, const std::string& key) {
  if (value.is_string()) return {single_token(tokenizer, value.get<std::string>(), vocab_size, where, key)};
  if (!value.is_array()) throw Error(where + ": \"" + key + "\" must be a string or a list of strings, got " + value.dump());
  if (value.empty()) throw Error(where + ": \"" + key + "\" is an empty list; give one string or a non-empty list of strings");
  std::vector<int> ids;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const std::string item = key + "[" + std::to_string(i) + "]";
    if (!value[i].is_string()) throw Error(where + ": \"" + item + "\" must be a string, got " + value[i].dump());
    ids.push_back(single_token(tokenizer, value[i].get<std::string>(), vocab_size, where, item));
  }
  return ids;
}

/// The value of "key" (ids) or else of "key_text" (text, which needs a tokenizer).
/// `set` says whether it is an answer/wrong set or a sequence.
inline std::vector<int> read_field(const nlohmann::json& line, const TokenizerSource& tokenizer_source, std::size_t vocab_size,
                                   const std::string& where, const std::string& key, bool set) {
  const auto ids = line.find(key);
  if (ids != line.end()) return set ? read_token_set(*ids, vocab_size, where, key) : read_token_ids(*ids, vocab_size, where, key);
  const std::string text_key = key + "_text";
  const auto text = line.find(text_key);
  if (text == line.end())
    throw Error(where + ": missing key \"" + key + "\" (or \"" + text_key +
                "\"); each line needs {\"clean\": [ids], \"corrupted\": [ids], \"answer\": id, \"wrong\": id}");
  const text::Tokenizer* tokenizer = tokenizer_source ? tokenizer_source() : nullptr;
  if (tokenizer == nullptr)
    throw Error(where + ": \"" + text_key + "\" needs a tokenizer, and none was given; give token ids in \"" + key +
                "\" instead");
  if (set) return read_text_set(*text, *tokenizer, vocab_size, where, text_key);
  if (!text->is_string()) throw Error(where + ": \"" + text_key + "\" must be a string, got " + text->dump());
  std::vector<int> seq = tokenize_text(*tokenizer, text->get<std::string>(), vocab_size, where, text_key);
  if (seq.empty()) throw Error(where + ": \"" + text_key + "\" is empty; give at least one token's worth of text");
  if (const std::optional<int> bos = tokenizer->bos()) {  // the model's BOS first, as its tokenizer puts it
    if (static_cast<std::size_t>(*bos) >= vocab_size)
      throw Error(where + ": \"" + text_key + "\": the tokenizer's BOS id " + std::to_string(*bos) +
                  " is outside the model's vocab_size " + std::to_string(vocab_size) + "; is this the model's tokenizer?");
    seq.insert(seq.begin(), *bos);
  }
  return seq;
}

/// One task line as an example, checked: clean and corrupted of equal length, at most
/// n_positions long.
inline TaskExample read_example(const nlohmann::json& line, const TokenizerSource& tokenizer, std::size_t vocab_size,
                                std::size_t n_positions, const std::string& where) {
  TaskExample example;
  example.clean = read_field(line, tokenizer, vocab_size, where, "clean", false);
  example.corrupted = read_field(line, tokenizer, vocab_size, where, "corrupted", false);
  // Neither answer nor wrong: a task for the answer-free metrics (kl, l2), as tracr's are.
  const bool answer_free = !line.contains("answer") && !line.contains("answer_text") && !line.contains("wrong") &&
                           !line.contains("wrong_text");
  if (!answer_free) {
    example.answer = read_field(line, tokenizer, vocab_size, where, "answer", true);
    example.wrong = read_field(line, tokenizer, vocab_size, where, "wrong", true);
  }
  if (example.clean.size() != example.corrupted.size()) {
    const bool text = !line.contains("clean") || !line.contains("corrupted");
    throw Error(where + ": clean" + (text ? " tokenizes to " : " has ") + std::to_string(example.clean.size()) +
                " tokens but corrupted" + (text ? " to " : " has ") + std::to_string(example.corrupted.size()) +
                "; clean and corrupted must have equal length");
  }
  if (example.clean.size() > n_positions)
    throw Error(where + ": the example has " + std::to_string(example.clean.size()) +
                " tokens but the model's context is n_positions = " + std::to_string(n_positions) + "; shorten it");
  return example;
}

}  // namespace detail

/// Parses the contents of a task file, checking every example against the model: ids in
/// [0, vocab_size), clean and corrupted non-empty, of equal length and at most n_positions long;
/// answer and wrong sets non-empty. Text fields whose ids are not given are tokenized with the
/// tokenizer (an error without one). Blank lines are skipped; a file without examples is an
/// error. `file` names it in errors.
inline Task task_from_text(const std::string& content, const std::string& file, std::size_t vocab_size,
                           std::size_t n_positions, const TokenizerSource& tokenizer) {
  std::istringstream in(content);
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
    } catch (const nlohmann::json::exception& e) {  // out_of_range.406: a number such as 1e999
      io::throw_json_error(e, where);
    }
    if (!json.is_object()) throw Error(where + ": expected a JSON object, got " + std::string(json.type_name()));

    task.examples.push_back(detail::read_example(json, tokenizer, vocab_size, n_positions, where));
    std::vector<int> outputs;
    if (const auto found = json.find("outputs"); found != json.end()) {
      if (!found->is_array() || found->empty())
        throw Error(where + ": \"outputs\" must be a non-empty list of output dimensions, got " + found->dump());
      for (const auto& o : *found) {
        if (!o.is_number_unsigned() || o.get<std::uint64_t>() > INT_MAX)
          throw Error(where + ": \"outputs\" must hold non-negative integers (output dimensions), got " + o.dump());
        outputs.push_back(o.get<int>());
      }
    }
    if (task.examples.size() == 1) task.outputs = outputs;
    else if (outputs != task.outputs)
      throw Error(where + ": \"outputs\" differs from the first line's; every line must name the same output dimensions");
  }
  if (task.examples.empty())
    throw Error(file + ": no examples (the file is empty or has only blank lines); write one JSON object per line");
  return task;
}

/// The same with a tokenizer at hand (or nullptr).
inline Task task_from_text(const std::string& content, const std::string& file, std::size_t vocab_size,
                           std::size_t n_positions, const text::Tokenizer* tokenizer) {
  return task_from_text(content, file, vocab_size, n_positions, TokenizerSource([tokenizer] { return tokenizer; }));
}

/// Reads task file `path` (task_from_text); Error for a missing file or a directory.
inline Task read_task(const std::filesystem::path& path, std::size_t vocab_size, std::size_t n_positions,
                      const text::Tokenizer* tokenizer) {
  return task_from_text(io::read_regular_file(path), path.string(), vocab_size, n_positions, tokenizer);
}

/// An id-only task file (text fields are an error: they need a tokenizer).
inline Task read_task(const std::filesystem::path& path, std::size_t vocab_size, std::size_t n_positions) {
  return read_task(path, vocab_size, n_positions, nullptr);
}

/// An answer or wrong set as JSON: a single id as a number, a set as a list.
inline nlohmann::ordered_json token_set_json(const std::vector<int>& ids) {
  return ids.size() == 1 ? nlohmann::ordered_json(ids[0]) : nlohmann::ordered_json(ids);
}

/// Writes one example a line, in the format read_task reads.
inline void write_task(std::ostream& out, const Task& task) {
  for (const TaskExample& example : task.examples) {
    nlohmann::ordered_json line = {{"clean", example.clean}, {"corrupted", example.corrupted}};
    if (!example.answer.empty()) line["answer"] = token_set_json(example.answer);
    if (!example.wrong.empty()) line["wrong"] = token_set_json(example.wrong);
    if (!task.outputs.empty()) line["outputs"] = task.outputs;
    out << line.dump() << '\n';
  }
}

}  // namespace circuitry
