#pragma once
// Parsing untrusted JSON. nlohmann throws its own exceptions (parse_error for bad syntax,
// out_of_range.406 for a number such as 1e999 that no double holds), which name no file; here
// each becomes one circuitry::Error that starts with the file (or line) it came from.
#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "circuitry/core/error.hpp"
#include "circuitry/io/read_file.hpp"

namespace circuitry::io {

/// The Error for a nlohmann exception raised while parsing or reading the JSON of `where`.
[[noreturn]] inline void throw_json_error(const nlohmann::json::exception& e, const std::string& where) {
  std::string what = e.what();  // "[json.exception.parse_error.101] parse error at line 1, ..."
  if (const auto end = what.find("] "); what.starts_with("[json.exception.") && end != std::string::npos)
    what.erase(0, end + 2);
  if (dynamic_cast<const nlohmann::json::parse_error*>(&e))
    throw Error(where + ": not valid JSON (" + what + ")");
  if (e.id == 406)  // out_of_range.406: number overflow
    throw Error(where + ": number out of range (" + what + "; JSON numbers must fit in a double)");
  throw Error(where + ": unreadable JSON (" + what + ")");
}

/// `text` parsed as JSON (nlohmann::json or nlohmann::ordered_json); Error names `where`.
template <class Json = nlohmann::json>
Json parse_json(std::string_view text, const std::string& where) {
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw_json_error(e, where);
  }
}

/// The JSON document in file `path`; Error names the file for a missing or unreadable file
/// and for malformed JSON.
template <class Json = nlohmann::json>
Json read_json_file(const std::filesystem::path& path) {
  return parse_json<Json>(read_regular_file(path), path.string());
}

}  // namespace circuitry::io
