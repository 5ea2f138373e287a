#pragma once
// Stopping and resuming the long runs (`attribute --method exact`, `acdc`):
//
//   --resume DIR           the state so far goes to DIR/checkpoint.json (written atomically), and a
//                          run given a DIR that holds one carries on from it; the outputs are the
//                          bytes an unbroken run writes. The checkpoint is removed once they are.
//   --checkpoint-every S   seconds between checkpoints (default 60; 0: after every step, that is
//                          every group of lanes of exact patching or every receiver of ACDC).
//   --stop-after S         stops at the first checkpoint after S seconds, with exit status 75, for
//                          batch systems with a time limit: run the same command again to go on.
//
// The file says which run it belongs to: the command, every option that can change a result
// (all but --out, --threads and these three), and what the run computed first (the edge count
// and the clean metric, which change with the model's weights or the task). A checkpoint of
// another run is refused with the first difference, never mixed in.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli_common.hpp"

namespace circuitry::cli {

/// Thrown when --stop-after's time is up, right after a checkpoint was written.
struct StoppedAtCheckpoint : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// The exit status of a run stopped at a checkpoint (EX_TEMPFAIL: try the same command again).
inline constexpr int kExitStoppedAtCheckpoint = 75;

/// The options of `attribute` and `acdc` that this file reads.
inline constexpr const char* kCheckpointOptions[] = {"--resume", "--checkpoint-every", "--stop-after"};

/// Per-edge flags as a string of '0' and '1' (compact in JSON), and back.
inline std::string flags_text(const std::vector<std::uint8_t>& flags) {
  std::string s(flags.size(), '0');
  for (std::size_t i = 0; i < flags.size(); ++i)
    if (flags[i]) s[i] = '1';
  return s;
}
inline std::vector<std::uint8_t> flags_from_text(const std::string& s, std::size_t n, const std::string& where) {
  require(s.size() == n && s.find_first_not_of("01") == std::string::npos,
          where + ": expected " + std::to_string(n) + " edge flags (a string of 0 and 1)");
  std::vector<std::uint8_t> flags(n);
  for (std::size_t i = 0; i < n; ++i) flags[i] = s[i] == '1';
  return flags;
}

/// A fingerprint of the clean run's logits (FNV-1a over their bytes, as hex): any change of the
/// weights, the task or the dtype changes it.
template <class T>
std::string logits_fingerprint(const std::vector<T>& logits) {
  std::uint64_t h = 14695981039346656037ull;
  const auto* bytes = reinterpret_cast<const unsigned char*>(logits.data());
  for (std::size_t i = 0; i < logits.size() * sizeof(T); ++i) h = (h ^ bytes[i]) * 1099511628211ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

class RunCheckpoint {
 public:
  /// Without --resume the checkpoint is inactive: nothing is read or written.
  explicit RunCheckpoint(const Args& a) {
    require(a.has("--resume") || (!a.has("--checkpoint-every") && !a.has("--stop-after")),
            a.command() + ": --checkpoint-every and --stop-after need --resume DIR (where the checkpoints go)");
    if (!a.has("--resume")) return;
    path_ = std::filesystem::path(a.get("--resume")) / "checkpoint.json";
    every_ = a.has("--checkpoint-every") ? a.number("--checkpoint-every") : 60.0;
    stop_after_ = a.has("--stop-after") ? a.number("--stop-after") : -1.0;
    require(every_ >= 0 && stop_after_ >= -1.0, a.command() + ": --checkpoint-every and --stop-after take seconds >= 0");
    identity_["command"] = a.command();
    for (const auto& [key, value] : a.values())
      if (key != "--out" && key != "--threads" && key != "--resume" && key != "--checkpoint-every" && key != "--stop-after")
        identity_["options"][key] = value;
    for (const std::string& flag : a.flags()) identity_["flags"].push_back(flag);
    io::create_output_folder(a.get("--resume"));
  }

  bool active() const { return !path_.empty(); }
  const std::filesystem::path& path() const { return path_; }

  /// Adds what the run computed before its long part (edge count, clean metric) to its identity,
  /// then reads the folder's checkpoint: this run's saved state, or nothing.
  std::optional<nlohmann::json> load(const Json& computed) {
    if (!active()) return std::nullopt;
    for (const auto& [key, value] : computed.items()) identity_[key] = value;
    start_ = std::chrono::steady_clock::now();
    last_write_ = start_;
    if (!std::filesystem::exists(path_)) return std::nullopt;
    const nlohmann::json j = io::read_json_file(path_.string());
    const std::string advice = "; give --resume another folder, or delete " + path_.string() + " to start over";
    require(j.is_object() && j.contains("run") && j.contains("state"), path_.string() + ": not a circuitry checkpoint" + advice);
    const nlohmann::json mine = nlohmann::json::parse(identity_.dump());  // ordered -> plain, as read
    if (j["run"] != mine) throw Error(path_.string() + ": a checkpoint of another run (" + first_difference(j["run"], mine) + ")" + advice);
    std::fprintf(stderr, "%s: resuming from %s\n", identity_["command"].get<std::string>().c_str(), path_.c_str());
    return j["state"];
  }

  /// Offers the state after a step: written when --checkpoint-every's interval has passed (and
  /// when --stop-after's time is up, which then stops the run).
  template <class MakeState>
  void offer(MakeState&& make_state) {
    if (!active()) return;
    const auto now = std::chrono::steady_clock::now();
    const bool stop = stop_after_ >= 0 && seconds(start_, now) >= stop_after_;
    if (!stop && seconds(last_write_, now) < every_) return;
    Json j;
    j["run"] = identity_;
    j["state"] = make_state();
    io::write_file_atomically(path_, result_text(j));
    last_write_ = std::chrono::steady_clock::now();
    if (stop)
      throw StoppedAtCheckpoint("stopped by --stop-after at a checkpoint (" + path_.string() +
                                "); run the same command again to carry on");
  }

  /// The outputs are written: the checkpoint has served its purpose.
  void finish() const {
    if (!active()) return;
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }

 private:
  static double seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  }
  /// "--lanes was 4, is 8": the first difference between a saved run and this one, the options
  /// first (what a user changes), then what the run computed.
  static std::string first_difference(const nlohmann::json& saved, const nlohmann::json& mine) {
    for (const char* key : {"command", "options", "flags", "n_edges", "clean_logits", "lanes_per_forward"}) {
      const nlohmann::json none;
      const nlohmann::json& was = saved.contains(key) ? saved[key] : none;
      const nlohmann::json& is = mine.contains(key) ? mine[key] : none;
      if (was == is) continue;
      if (std::string(key) == "options") return option_difference(was, is);
      if (std::string(key) == "clean_logits") return "the clean run's logits differ: another model, task or dtype";
      return std::string(key) + " was " + was.dump() + ", is " + is.dump();
    }
    return "different";
  }
  static std::string option_difference(const nlohmann::json& was, const nlohmann::json& is) {
    for (const auto& [key, value] : is.items())
      if (!was.contains(key)) return key + " was not given, is " + value.dump();
      else if (was[key] != value) return key + " was " + was[key].dump() + ", is " + value.dump();
    for (const auto& [key, value] : was.items())
      if (!is.contains(key)) return key + " was " + value.dump() + ", is not given";
    return "different options";
  }

  std::filesystem::path path_;
  double every_ = 60, stop_after_ = -1;
  Json identity_;
  std::chrono::steady_clock::time_point start_, last_write_;
};

// ---- the states of the two long runs, as JSON (numbers in their shortest exact form) ----

inline Json exact_state_json(const ExactCheckpoint& c) {
  return {{"lanes_per_forward", c.lanes_per_forward}, {"groups_done", c.groups_done}, {"edges_done", c.edges_done},
          {"edge_scores", c.edge_scores}};
}

inline ExactCheckpoint exact_state_from_json(const nlohmann::json& j, std::size_t n_edges, const std::string& where) {
  try {
    ExactCheckpoint c{j.at("lanes_per_forward").get<std::size_t>(), j.at("groups_done").get<std::size_t>(),
                      j.at("edges_done").get<std::size_t>(), j.at("edge_scores").get<std::vector<double>>()};
    require(c.edge_scores.size() == n_edges, "expected " + std::to_string(n_edges) + " edge scores");
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": the exact-patching state is malformed (" + e.what() + ")");
  } catch (const Error& e) {
    throw Error(where + ": the exact-patching state is malformed (" + e.what() + ")");
  }
}

inline Json acdc_circuit_json(const AcdcCircuit& c) {
  return {{"threshold", c.threshold}, {"in_graph", flags_text(c.in_graph)}, {"n_edges", c.n_edges},
          {"distance", c.distance},   {"metric", c.metric},                 {"runs", c.runs}};
}

inline Json acdc_state_json(const std::vector<AcdcCircuit>& finished, const AcdcPassState& current) {
  Json done = Json::array();
  for (const AcdcCircuit& c : finished) done.push_back(acdc_circuit_json(c));
  return {{"finished", std::move(done)},
          {"current",
           {{"threshold", current.threshold}, {"receivers_done", current.receivers_done}, {"removed", flags_text(current.removed)},
            {"distance", current.distance}, {"metric", current.metric}, {"runs", current.runs}}}};
}

inline AcdcCheckpoint acdc_state_from_json(const nlohmann::json& j, std::size_t n_edges, const std::string& where) {
  try {
    AcdcCheckpoint c;
    for (const auto& f : j.at("finished"))
      c.finished.push_back({f.at("threshold").get<double>(), flags_from_text(f.at("in_graph").get<std::string>(), n_edges, where),
                            f.at("n_edges").get<std::size_t>(), f.at("distance").get<double>(), f.at("metric").get<double>(),
                            f.at("runs").get<std::size_t>()});
    const auto& p = j.at("current");
    c.current = {p.at("threshold").get<double>(), p.at("receivers_done").get<std::size_t>(),
                 flags_from_text(p.at("removed").get<std::string>(), n_edges, where), p.at("distance").get<double>(),
                 p.at("metric").get<double>(), p.at("runs").get<std::size_t>()};
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": the ACDC state is malformed (" + e.what() + ")");
  }
}

}  // namespace circuitry::cli
