#pragma once
// A small command-line parser: `--key value` options and `--flag` switches, each checked
// against the command's list so a typo is an error that names the option.
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <circuitry/core/error.hpp>

namespace circuitry::cli {

class Args {
 public:
  Args(const std::string& command, int argc, char** argv, int first, const std::set<std::string>& options,
       const std::set<std::string>& flags = {})
      : command_(command) {
    for (int i = first; i < argc; ++i) {
      const std::string key = argv[i];
      if (flags.count(key)) {
        flags_.insert(key);
      } else if (options.count(key)) {
        require(i + 1 < argc, command_ + ": option " + key + " needs a value");
        values_[key] = argv[++i];
      } else {
        std::string known;
        for (const auto& o : options) known += " " + o;
        for (const auto& f : flags) known += " " + f;
        throw Error(command_ + ": unknown option '" + key + "' (options:" + known + ")");
      }
    }
  }
  bool has(const std::string& key) const { return values_.count(key) > 0; }
  /// Checks up front that every required option is there, so a long run never ends in
  /// "missing --out".
  void need(std::initializer_list<const char*> keys) const {
    for (const char* key : keys) require(has(key), command_ + ": missing required option " + std::string(key));
  }
  /// --threads N, 1..1024, or 0 (all cores) when absent.
  int threads() const {
    const long long n = integer("--threads", 0);
    require(!has("--threads") || (n >= 1 && n <= 1024), command_ + ": --threads must be between 1 and 1024, got " + std::to_string(n));
    return static_cast<int>(n);
  }
  /// A positive integer option (counts such as --steps).
  std::size_t positive(const std::string& key, long long fallback) const {
    const long long n = integer(key, fallback);
    require(n >= 1 && n <= 1'000'000, command_ + ": " + key + " must be a positive integer (at most 1000000), got " + std::to_string(n));
    return static_cast<std::size_t>(n);
  }
  bool flag(const std::string& key) const { return flags_.count(key) > 0; }
  const std::string& command() const { return command_; }
  const std::map<std::string, std::string>& values() const { return values_; }
  const std::set<std::string>& flags() const { return flags_; }
  std::string get(const std::string& key) const {
    auto it = values_.find(key);
    require(it != values_.end(), command_ + ": missing required option " + key);
    return it->second;
  }
  std::string get(const std::string& key, const std::string& fallback) const { return has(key) ? get(key) : fallback; }
  long long integer(const std::string& key, long long fallback) const {
    if (!has(key)) return fallback;
    const std::string v = get(key);
    std::size_t used = 0;
    long long n = 0;
    try {
      n = std::stoll(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    require(used == v.size() && !v.empty(), command_ + ": " + key + " needs an integer, got '" + v + "'");
    return n;
  }
  double number(const std::string& key) const { return parse_number(key, get(key)); }
  /// A comma-separated list of numbers.
  std::vector<double> numbers(const std::string& key) const {
    std::vector<double> out;
    for (const std::string& v : list(key)) out.push_back(parse_number(key, v));
    return out;
  }
  double parse_number(const std::string& key, const std::string& v) const {
    std::size_t used = 0;
    double x = 0;
    try {
      x = std::stod(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    require(used == v.size() && !v.empty() && x == x, command_ + ": " + key + " needs a number, got '" + v + "'");
    return x;
  }
  std::vector<std::string> list(const std::string& key) const {
    std::vector<std::string> out;
    std::string cur;
    for (char c : get(key) + ",") {
      if (c == ',') {
        if (!cur.empty()) out.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    require(!out.empty(), command_ + ": " + key + " needs a comma-separated list");
    return out;
  }

 private:
  std::string command_;
  std::map<std::string, std::string> values_;
  std::set<std::string> flags_;
};

}  // namespace circuitry::cli
