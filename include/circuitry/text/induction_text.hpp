#pragma once
// Induction as text: make_induction_task (induction.hpp: Olsson et al. 2022) over a list of
// words instead of token ids. Token id i of the id task becomes word i of kInductionWords,
// written with its leading space, so
//   clean:     " load size files ... item load size"   -> " files"   (the token after " size" earlier)
//   corrupted: the earlier " files" replaced by a word that occurs nowhere else  (wrong = that word)
// Every word is one token (those another vocabulary splits are left out, single_token_words),
// so the text has exactly the id task's structure.
// The words are the docstring task's parameter names (docstring.hpp). Extra keys: "task":
// "induction".
#include <string>
#include <vector>

#include "circuitry/text/docstring.hpp"
#include "circuitry/text/induction.hpp"
#include "circuitry/text/text_example.hpp"

namespace circuitry::text {

inline constexpr const auto& kInductionWords = kDocstringWords;

/// n examples of half length `half_length` (the cut drawn from [min_prefix, half_length - 1]);
/// the words left out are appended to `skipped`. Deterministic in seed.
inline std::vector<TextExample> make_induction_text(std::size_t n, unsigned seed, const Tokenizer& tokenizer,
                                                    std::size_t half_length = 10, std::size_t min_prefix = 2,
                                                    std::vector<std::string>* skipped = nullptr) {
  const auto words = single_token_words(tokenizer, kInductionWords, half_length + 1, "induction", "words", skipped);
  const Task ids = make_induction_task(words.size(), half_length, n, seed, min_prefix);
  auto text = [&words](const std::vector<int>& seq) {
    std::string s;
    for (int i : seq) s += " " + std::string(words[std::size_t(i)]);
    return s;
  };
  std::vector<TextExample> out;
  out.reserve(n);
  for (const TaskExample& e : ids.examples) {
    TextExample t;
    t.clean = text(e.clean);
    t.corrupted = text(e.corrupted);
    t.answer = {text(e.answer)};
    t.wrong = {text(e.wrong)};
    t.extra = {{"task", "induction"}};
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace circuitry::text
