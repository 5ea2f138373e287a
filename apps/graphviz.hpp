#pragma once
// Graphviz, where the command line draws a circuit: the SVG that `dot -Tsvg` renders from a
// DOT file (io/dot.hpp writes the DOT text). The library runs no programs; this is the apps' part.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include <circuitry/core/error.hpp>

namespace circuitry::cli {

/// A POSIX shell single-quoted word.
inline std::string shell_quote(const std::string& word) {
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

/// The SVG of a DOT file, or nullopt when `dot` is not on PATH; Error when dot runs and fails.
/// The caller writes it (an OutputSet stages it beside the DOT file, so both appear together or
/// not at all). POSIX shells only.
inline std::optional<std::string> render_svg(const std::filesystem::path& dot_path) {
  if (std::system("command -v dot >/dev/null 2>&1") != 0) return std::nullopt;
  const std::string command = "dot -Tsvg " + shell_quote(dot_path.string()) + " 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  require(pipe != nullptr, dot_path.string() + ": cannot run graphviz 'dot'");
  std::string svg;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) svg.append(buffer, n);
  require(::pclose(pipe) == 0 && !svg.empty(), dot_path.string() + ": graphviz 'dot' failed to render it to SVG");
  return svg;
}

}  // namespace circuitry::cli
