#pragma once
// What the commands of apps/circuitry.cpp and the model commands (apps/model_command_bodies.hpp)
// share: results refused when not finite, outputs checked before any computing, progress lines,
// and the options that several commands parse the same way.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <circuitry/circuitry.hpp>

#include "cli_args.hpp"
#include "embedded_ground_truth.hpp"

namespace circuitry::cli {

using Json = api::Json;
using namespace circuitry::io;  // the commands read and write their files through io/ throughout

using api::require_finite;
using api::result_text;

/// Writes a command's one JSON result atomically (io/atomic_file.hpp).
inline void write_json(const std::string& path, const Json& j) { io::write_file_atomically(path, result_text(j)); }

/// Checks the folders of every output a command will write, before it computes anything.
inline void check_outputs(const Args& a, std::initializer_list<const char*> options) {
  for (const char* option : options)
    if (a.has(option)) io::check_writable(a.get(option));
}

/// A duration for progress lines: "42 s", "3 min 10 s", "2 h 5 min".
inline std::string human_duration(double seconds) {
  const long long s = std::llround(std::max(seconds, 0.0));
  if (s < 60) return std::to_string(s) + " s";
  if (s < 3600) return std::to_string(s / 60) + " min " + std::to_string(s % 60) + " s";
  return std::to_string(s / 3600) + " h " + std::to_string(s % 3600 / 60) + " min";
}

/// "about T left" from the rate so far (work done of total after `seconds`), or "" before any.
inline std::string time_left(double seconds, std::size_t done, std::size_t total) {
  if (done == 0 || done >= total) return "";
  return ", about " + human_duration(seconds * double(total - done) / double(done)) + " left";
}

/// Progress on stderr for long runs: a line every few seconds, with an estimate of the time left
/// from this run's rate (`already_done`: the edges a resumed run found done).
inline std::function<void(std::size_t, std::size_t)> progress_printer(const std::string& what, std::size_t already_done = 0) {
  auto start = std::chrono::steady_clock::now();
  auto last = std::make_shared<double>(0.0);
  return [=](std::size_t done, std::size_t total) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (done == total || s - *last >= 2.0) {
      *last = s;
      std::fprintf(stderr, "%s: %zu/%zu edges, %.1f s%s\n", what.c_str(), done, total, s,
                   time_left(s, done - already_done, total - already_done).c_str());
    }
  };
}

/// --ablation resample|zero|mean (default resample).
inline Ablation parse_ablation(const Args& a) {
  const std::string name = a.get("--ablation", "resample");
  api::find_choice(api::ablations(), name, "--ablation");
  return circuitry::parse_ablation(name);
}

/// --threshold T, --thresholds T1,T2,... (ascending), or the default log-spaced sweep.
inline std::vector<double> acdc_thresholds(const Args& a) {
  require(!(a.has("--threshold") && a.has("--thresholds")), "give --threshold T or --thresholds T1,T2,..., not both");
  std::vector<double> t;
  if (a.has("--threshold")) t.push_back(a.number("--threshold"));
  else if (a.has("--thresholds")) t = a.numbers("--thresholds");
  else t = default_acdc_thresholds();
  check_acdc_thresholds(t);
  return t;
}

inline AcdcOptions acdc_options(const Args& a) {
  AcdcOptions o;
  o.ablation = parse_ablation(a);
  o.lanes = a.positive("--lanes", 8);
  // Progress on stderr: receiver, edges removed so far, distance; a line every two seconds.
  // The estimate of the time left is the pass's: its receivers done since it began (or since
  // a resumed run carried it on), whose costs differ (a receiver near the logits restarts late).
  struct PassClock {
    double last_line = -10, last_call = 0, pass_start = 0;
    std::size_t last_receiver = 0, base = 0;
    bool first = true;
  };
  auto start = std::chrono::steady_clock::now();
  auto clock = std::make_shared<PassClock>();
  o.progress = [=](const AcdcProgress& p) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    PassClock& c = *clock;
    if (c.first || p.receiver <= c.last_receiver) {  // a pass begins (or is carried on)
      c.pass_start = c.last_call, c.base = p.receiver - 1, c.first = false;
    }
    c.last_call = s, c.last_receiver = p.receiver;
    if (p.receiver == p.n_receivers || s - c.last_line >= 2.0) {
      c.last_line = s;
      std::fprintf(stderr, "acdc: receiver %zu/%zu (%s), %zu edges removed, distance %.6g, %.1f s%s\n", p.receiver, p.n_receivers,
                   p.receiver_name.c_str(), p.removed, p.distance, s,
                   time_left(s - c.pass_start, p.receiver - c.base, p.n_receivers - c.base).c_str());
    }
  };
  return o;
}

/// A ground truth by file, or by the name of one that ships inside the executable (api/ground_truths.hpp).
inline std::vector<std::uint8_t> resolve_ground_truth(const Graph& graph, const std::string& value, const std::string& key) {
  return api::resolve_ground_truth(graph, value, key, embedded_ground_truth::lookup);
}

inline std::vector<std::vector<std::string>> read_paths(const std::string& path) {
  const nlohmann::json j = io::read_json_file(path);
  require(j.is_object() && j.contains("paths") && j["paths"].is_array(),
          path + ": expected {\"paths\": [[edge, ...], ...]}");
  std::vector<std::vector<std::string>> paths;
  for (std::size_t i = 0; i < j["paths"].size(); ++i) {
    const auto& p = j["paths"][i];
    require(p.is_array() && !p.empty(), path + ": paths[" + std::to_string(i) + "] must be a non-empty list of edge names");
    std::vector<std::string> edges;
    for (const auto& e : p) {
      require(e.is_string(), path + ": paths[" + std::to_string(i) + "] holds something that is not an edge name");
      edges.push_back(e.get<std::string>());
    }
    paths.push_back(std::move(edges));
  }
  return paths;
}

}  // namespace circuitry::cli
