#pragma once
// The command line's options. Each command declares its options once (apps/commands.hpp: a name,
// the value it takes, what it does); CLI11 parses argv against that list and generates the
// command's --help from it, so the help cannot drift from what the parser accepts. Args reads the
// parsed values; a typo is an error that names the option and lists the command's options.
#include <cstdio>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <circuitry/core/error.hpp>

namespace circuitry::cli {

/// One option of a command: `--name VALUE`, or a switch when value is empty.
struct OptionSpec {
  std::string name;
  std::string value;
  std::string help;
};

/// A command: its name (empty for the main job), its usage lines as the README lists them, a
/// one-line summary and its options.
struct CommandSpec {
  std::string name;
  std::string synopsis;
  std::string summary;
  std::vector<OptionSpec> options;
};

/// `--help` was asked for and printed: the command ends there, successfully.
struct HelpShown {};

class Args {
 public:
  /// Parses argv[first..] against spec's options. --help prints the command's generated help
  /// and throws HelpShown.
  Args(const CommandSpec& spec, int argc, char** argv, int first) : command_(spec.name.empty() ? "circuitry" : spec.name) {
    CLI::App app(spec.summary, "circuitry" + (spec.name.empty() ? "" : " " + spec.name));
    app.allow_extras();
    app.footer("usage:\n" + spec.synopsis);
    std::map<std::string, std::string> values;
    std::map<std::string, CLI::Option*> parsed;
    for (const OptionSpec& o : spec.options)
      parsed[o.name] = o.value.empty() ? app.add_flag(o.name, o.help) : app.add_option(o.name, values[o.name], o.help)->type_name(o.value);
    std::vector<std::string> rest;  // CLI11 parses a vector given in reverse order
    for (int i = argc - 1; i >= first; --i) rest.emplace_back(argv[i]);
    try {
      app.parse(rest);
    } catch (const CLI::CallForHelp&) {
      std::fputs(app.help().c_str(), stdout);
      throw HelpShown{};
    } catch (const CLI::ParseError& e) {
      throw Error(command_ + ": " + e.what());
    }
    if (!app.remaining().empty()) {
      std::string known;
      for (const OptionSpec& o : spec.options) known += " " + o.name;
      throw Error(command_ + ": unknown option '" + app.remaining().front() + "' (options:" + known + ")");
    }
    for (const OptionSpec& o : spec.options)
      if (parsed[o.name]->count() > 0) {
        if (o.value.empty()) flags_.insert(o.name);
        else values_[o.name] = values[o.name];
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
