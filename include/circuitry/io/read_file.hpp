#pragma once
// Reading an input file whole. Every way it can go wrong (absent, a directory, a device,
// unreadable, failing mid-read) ends in one circuitry::Error that names the file; the stream
// library's own exceptions (basic_filebuf::underflow on a directory) never escape.
#include <filesystem>
#include <fstream>
#include <ios>
#include <sstream>
#include <string>
#include <system_error>

#include "circuitry/core/error.hpp"

namespace circuitry::io {

/// The bytes of `path`, a regular file (or a pipe, so `--task <(...)` works).
inline std::string read_regular_file(const std::filesystem::path& path) {
  const std::string where = path.string();
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) throw Error(where + ": file does not exist");
  if (std::filesystem::is_directory(status)) throw Error(where + ": is a directory, not a regular file");
  if (!std::filesystem::is_regular_file(status) && !std::filesystem::is_fifo(status))
    throw Error(where + ": is not a regular file (a device or socket?)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(where + ": cannot open the file for reading (check its permissions)");
  std::ostringstream text;
  try {
    text << in.rdbuf();
  } catch (const std::ios_base::failure& e) {
    throw Error(where + ": read failed (" + e.what() + ")");
  }
  if (in.bad()) throw Error(where + ": read failed");
  return std::move(text).str();
}

}  // namespace circuitry::io
