#pragma once
// Numbers as JSON text, fast and exact. nlohmann::json writes a number by building a tree node
// for it first, and a result with millions of numbers (forward's logits: batch x 50,257) spends
// more time in that tree than in the model. Here numbers go straight into the output string
// through std::to_chars, which writes the shortest decimal that reads back to the same value:
// a float in at most 9 significant digits, a double in at most 17. A float is written as a
// float (reading it as a double and rounding to float gives the float back), so a float32
// run's files are not padded with the digits of its widening to double.
#include <charconv>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "circuitry/core/error.hpp"
#include "circuitry/core/parallel.hpp"

namespace circuitry::io {

/// Appends `v` as a JSON number: the shortest text that reads back to exactly `v` (as its own
/// type), with ".0" added to a whole number so that readers keep it a floating-point number,
/// as nlohmann writes it. JSON has no NaN or infinity: Error for those, and callers that can
/// name the offending value check first.
template <class T>
void append_json_number(std::string& out, T v) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "a float or a double");
  // An `if`, not require(): require's message would be built for every number written.
  if (!std::isfinite(v)) throw Error("cannot write " + std::to_string(v) + " as a JSON number (JSON has no NaN or infinity)");
  char buffer[32];  // ample: the longest shortest form, "-2.2250738585072014e-308", is 24 characters
  const char* end = std::to_chars(buffer, buffer + sizeof buffer, v).ptr;
  const std::string_view text(buffer, static_cast<std::size_t>(end - buffer));
  out += text;
  if (text.find_first_of(".e") == std::string_view::npos) out += ".0";
}

/// Appends `[a, b, ...]`, the n numbers at p, on one line.
template <class T>
void append_json_array(std::string& out, const T* p, std::size_t n) {
  out += '[';
  for (std::size_t i = 0; i < n; ++i) {
    if (i > 0) out += ", ";
    append_json_number(out, p[i]);
  }
  out += ']';
}

/// Appends a [rows, cols] matrix as `[\n  [row 0],\n  [row 1]\n ]`, one row per line (the
/// layout of forward's logits). Rows are formatted in parallel, each into its own string, and
/// joined in order: the same text for any thread count, in half the time on two cores (a
/// float takes about 0.1 us to format; 32 GPT-2 rows are 1.6 million of them).
template <class T>
void append_json_matrix(std::string& out, const T* p, std::size_t rows, std::size_t cols) {
  std::vector<std::string> text(rows);
  parallel_tasks(rows, [&](std::size_t r) {
    // Built in a local string and moved in at the end: appending to text[r] itself would write
    // its size field, beside the next row's, on every number (false sharing between threads
    // that took neighbouring rows: no faster than one thread).
    std::string row;
    row.reserve(cols * 16);
    append_json_array(row, p + r * cols, cols);
    text[r] = std::move(row);
  });
  std::size_t total = 0;
  for (const auto& t : text) total += t.size() + 4;
  out.reserve(out.size() + total + 4);
  out += '[';
  for (std::size_t r = 0; r < rows; ++r) {
    out += r == 0 ? "\n  " : ",\n  ";
    out += text[r];
  }
  out += rows == 0 ? "]" : "\n ]";
}

}  // namespace circuitry::io
