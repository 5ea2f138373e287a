#pragma once
// The canonical circuits that ship with circuitry (data/ground-truth, in EAP-IG's edge names), by
// the names `--ground-truth` and Python's `ground_truth=` accept, and the one lookup both use: a
// file path, else a shipped name. A program embeds the files' bytes (cmake/EmbedFiles.cmake's
// circuitry_embed_ground_truths) and hands their lookup to resolve_ground_truth.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "circuitry/graph/graph.hpp"
#include "circuitry/io/circuit_json.hpp"
#include "circuitry/io/json_parse.hpp"

namespace circuitry::api {

struct ShippedGroundTruth {
  std::string name;  // as users write it
  std::string file;  // its file in data/ground-truth
};

inline const std::vector<ShippedGroundTruth>& shipped_ground_truths() {
  static const std::vector<ShippedGroundTruth> list = {{"ioi", "ioi-gpt2-small.json"},
                                                       {"greaterthan", "greaterthan-gpt2-small.json"},
                                                       {"greater-than", "greaterthan-gpt2-small.json"},
                                                       {"docstring", "docstring-attn-only-4l.json"},
                                                       {"tracr-reverse", "tracr-reverse.json"},
                                                       {"tracr-proportion", "tracr-proportion.json"}};
  return list;
}

/// The bytes of a shipped file by its file name ("" when the program carries none).
using ShippedFiles = std::function<std::string_view(std::string_view file)>;

/// One flag per edge of `graph`: the ground truth in file `value`, or the shipped one named `value`
/// (a file of that name wins); `key` is the member holding the edge names.
inline std::vector<std::uint8_t> resolve_ground_truth(const Graph& graph, const std::string& value, const std::string& key,
                                                      const ShippedFiles& shipped) {
  std::error_code ec;
  if (!std::filesystem::exists(value, ec))
    for (const ShippedGroundTruth& s : shipped_ground_truths())
      if (value == s.name) {
        const std::string_view text = shipped ? shipped(s.file) : std::string_view{};
        require(!text.empty(), "ground truth '" + value + "' does not ship with this program; give its file (data/ground-truth/" + s.file + ")");
        return io::ground_truth_from_json(graph, io::parse_json(text, value), "ground truth '" + value + "'", key);
      }
  require(std::filesystem::exists(value, ec), "ground truth '" + value +
                                                  "' is neither a file nor a shipped ground truth (ioi, greaterthan, "
                                                  "docstring, tracr-reverse, tracr-proportion)");
  return io::read_ground_truth(graph, value, key);
}

}  // namespace circuitry::api
