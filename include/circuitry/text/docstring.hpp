#pragma once
// Docstring (Heimersheim and Janiak 2023, "A circuit for Python docstrings in a 4-layer
// attention-only transformer", LessWrong/Alignment Forum; the task of ACDC, Conmy et al.
// 2023, arXiv:2304.14997, acdc/docstring/prompts.py).
//
//   def port(self, state, size, load, files, last, item):
//       """oil column piece
//
//       :param load: crime population
//       :param files: unit dark
//       :param                                  -> " last"
//
// The def has 2 leading parameters, 3 "matching" ones and 1 trailing one; the docstring
// documents the first two matching parameters, and the model should name the third. These
// are ACDC's settings (n_def_prefix_args=2, n_matching_args=3, n_def_suffix_args=1,
// n_doc_prefix_args=0, met_desc_len=3, arg_desc_len=2). The prompt starts with a newline, as
// ACDC's template does. Each example draws distinct names in ACDC's groups: the function
// name, a random answer, 3 random def and 2 random doc parameters (for the corruption), 2
// non-matching ones, the 3 matching ones, 2 leading and 1 trailing def parameter. answer =
// the third matching parameter; wrong = every other name drawn for the example except the
// function's (13 names, as ACDC's wrong_answers); metric logit_diff_max (answer minus the
// best wrong token, ACDC's docstring metric).
// Corruption: ACDC's default, "random_random": the 3 matching def parameters are replaced by
// the random def ones and the documented ones by the random doc ones; the leading and
// trailing def parameters, the function name and the descriptions stay, so the docstring no
// longer tells which def parameter comes next.
// Every word is one GPT-2 token with its leading space; those another vocabulary splits are
// left out (single_token_words). Extra keys: "task": "docstring".
#include <array>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "circuitry/text/induction.hpp"
#include "circuitry/text/text_example.hpp"

namespace circuitry::text {

inline constexpr std::size_t kDocstringDefPrefix = 2, kDocstringMatching = 3, kDocstringDefSuffix = 1;
inline constexpr std::size_t kDocstringMethodDescription = 3, kDocstringArgDescription = 2;

// Parameter and function names, and description words: short common English words, each a
// single GPT-2 token with a leading space, as in Heimersheim and Janiak's prompts.
inline constexpr std::array<std::string_view, 60> kDocstringWords = {
    "load",   "size",   "files",  "last",    "port",   "data",  "name",   "value", "count",  "index",
    "item",   "key",    "path",   "mode",    "text",   "user",  "state",  "type",  "line",   "node",
    "file",   "result", "page",   "time",    "word",   "list",  "table",  "order", "group",  "form",
    "field",  "image",  "token",  "label",   "model",  "color", "score",  "level", "point",  "start",
    "stop",   "limit",  "total",  "source",  "target", "parent", "child", "shape", "width",  "height",
    "offset", "range",  "query",  "filter",  "format", "prefix", "number", "title", "content", "message",
};
inline constexpr std::array<std::string_view, 40> kDocstringDescriptionWords = {
    "crime", "population", "unit",  "dark",  "oil",   "column", "piece", "house",  "river", "tree",
    "stone", "fire",       "water", "wind",  "rain",  "snow",   "light", "sound",  "voice", "music",
    "song",  "game",       "ball",  "card",  "ship",  "boat",   "train", "car",    "road",  "bridge",
    "wall",  "door",       "window", "room", "floor", "box",    "bag",   "bottle", "cup",   "glass",
};

namespace detail {

/// The prompt: def with `def_args`, docstring documenting `doc_args` with `descriptions`
/// (method description first, then kDocstringArgDescription words per documented argument).
inline std::string docstring_prompt(std::string_view function, const std::vector<std::string_view>& def_args,
                                    const std::vector<std::string_view>& doc_args,
                                    const std::vector<std::string_view>& descriptions) {
  std::string s = "\ndef " + std::string(function) + "(self";
  for (auto a : def_args) s += ", " + std::string(a);
  s += "):\n    \"\"\"";
  std::size_t d = 0;
  for (std::size_t i = 0; i < kDocstringMethodDescription; ++i) s += (i ? " " : "") + std::string(descriptions[d++]);
  s += "\n";
  for (auto a : doc_args) {
    s += "\n    :param " + std::string(a) + ":";
    for (std::size_t i = 0; i < kDocstringArgDescription; ++i) s += " " + std::string(descriptions[d++]);
  }
  s += "\n    :param";
  return s;
}

}  // namespace detail

/// n docstring examples (see the top of this file), drawn from the words that are one token in
/// the tokenizer's vocabulary (those left out are appended to `skipped`). Deterministic in seed.
inline std::vector<TextExample> make_docstring(std::size_t n, unsigned seed, const Tokenizer& tokenizer,
                                               std::vector<std::string>* skipped = nullptr) {
  constexpr std::size_t n_doc = kDocstringMatching - 1;
  constexpr std::size_t n_desc = kDocstringMethodDescription + n_doc * kDocstringArgDescription;
  // Distinct words in ACDC's groups (see the top of this file).
  constexpr std::size_t n_not_matching = kDocstringMatching - 1;
  constexpr std::size_t n_names = 1 + 1 + kDocstringMatching + n_not_matching + n_not_matching + kDocstringMatching +
                                  kDocstringDefPrefix + kDocstringDefSuffix;
  const auto words = single_token_words(tokenizer, kDocstringWords, n_names, "docstring", "parameter names", skipped);
  const auto description_words =
      single_token_words(tokenizer, kDocstringDescriptionWords, n_desc, "docstring", "description words", skipped);
  std::mt19937 rng(seed);
  std::vector<TextExample> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::vector<int> w = circuitry::detail::distinct_tokens(words.size(), n_names, rng);
    const std::vector<int> dw = circuitry::detail::distinct_tokens(description_words.size(), n_desc, rng);
    std::size_t next = 0;
    auto take = [&](std::size_t count) {
      std::vector<std::string_view> group;
      for (std::size_t k = 0; k < count; ++k) group.push_back(words[std::size_t(w[next++])]);
      return group;
    };
    const std::string_view function = take(1)[0];
    const std::vector<std::string_view> random_answer = take(1), random_def = take(kDocstringMatching),
                                        random_doc = take(n_not_matching), not_matching = take(n_not_matching),
                                        matching = take(kDocstringMatching), prefix = take(kDocstringDefPrefix),
                                        suffix = take(kDocstringDefSuffix);
    auto def_with = [&](const std::vector<std::string_view>& middle) {
      std::vector<std::string_view> args(prefix);
      args.insert(args.end(), middle.begin(), middle.end());
      args.insert(args.end(), suffix.begin(), suffix.end());
      return args;
    };
    const std::vector<std::string_view> doc_args(matching.begin(), matching.begin() + n_doc);
    std::vector<std::string_view> descriptions;
    for (int k : dw) descriptions.push_back(description_words[std::size_t(k)]);
    TextExample e;
    e.clean = detail::docstring_prompt(function, def_with(matching), doc_args, descriptions);
    e.corrupted = detail::docstring_prompt(function, def_with(random_def), random_doc, descriptions);
    e.answer = {" " + std::string(matching.back())};
    for (std::size_t k = 1; k < n_names; ++k)
      if (words[std::size_t(w[k])] != matching.back()) e.wrong.push_back(" " + std::string(words[std::size_t(w[k])]));
    e.extra = {{"task", "docstring"}};
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace circuitry::text
