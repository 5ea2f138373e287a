#pragma once
// A task example as text, the form the generators (IOI, Greater-Than, docstring, induction)
// produce, and its way to token ids and to a task file line (DESIGN.md section 3):
//   {"clean_text", "corrupted_text", "answer_text", "wrong_text", "clean", "corrupted",
//    "answer", "wrong", ...extra keys such as "task" and "template"}
// Tokenizing goes through the same checks as reading a task file (equal lengths, one token
// per answer or wrong text), so a generated line and a hand-written one fail the same way.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuitry/core/error.hpp"
#include "circuitry/text/bpe_tokenizer.hpp"
#include "circuitry/text/task.hpp"

namespace circuitry::text {

struct TextExample {
  std::string clean, corrupted;            // prompts; the metric reads the position after their last token
  std::vector<std::string> answer, wrong;  // the answer set and the wrong set, each text one token
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // kept keys: "task", "template", ...
};

/// The one token of `word` (a word of a generator's list, with its leading space, read where it
/// stands after other text: a SentencePiece " Mary" is '\u2581Mary'), or an Error that names the
/// generator, the word and how it tokenizes.
inline int word_token(const Tokenizer& tokenizer, const std::string& word, const std::string& generator) {
  const std::vector<int> ids = tokenizer.encode_continuation(word);
  if (ids.size() == 1) return ids[0];
  std::string pieces;
  for (std::size_t i = 0; i < ids.size(); ++i) pieces += (i ? " " : "") + nlohmann::json(tokenizer.token_text(ids[i])).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  throw Error(generator + ": the word " + nlohmann::json(word).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + " is " + std::to_string(ids.size()) +
              " tokens (" + pieces + "), not one; every word of the generator's lists must be a single token");
}

/// The words of a generator's list that are one token each with their leading space, in the
/// list's order. The lists are GPT-2 single tokens, as the papers chose them; another vocabulary
/// splits some (SmolLM2's " Brandon" is 2 tokens), and those are left out, each appended to
/// `skipped` (when given) with its leading space. Fewer than `needed` left is an Error naming
/// the generator and how the first word left out tokenizes.
template <class List>
std::vector<std::string_view> single_token_words(const Tokenizer& tokenizer, const List& words, std::size_t needed,
                                                 const std::string& generator, const std::string& what,
                                                 std::vector<std::string>* skipped) {
  std::vector<std::string_view> kept;
  std::vector<std::string> left_out;
  for (const std::string_view w : words) {
    if (tokenizer.encode_continuation(" " + std::string(w)).size() == 1) kept.push_back(w);
    else left_out.push_back(" " + std::string(w));
  }
  if (kept.size() < needed) {
    std::string first;
    try {
      word_token(tokenizer, left_out.front(), generator);
    } catch (const Error& e) {
      first = e.what();
    }
    throw Error(generator + ": " + std::to_string(kept.size()) + " of the generator's " + std::to_string(words.size()) + " " +
                what + " are one token in this vocabulary, and the task needs " + std::to_string(needed) + " (" + first + ")");
  }
  if (skipped) skipped->insert(skipped->end(), left_out.begin(), left_out.end());
  return kept;
}

namespace detail {

inline nlohmann::json text_set_json(const std::vector<std::string>& texts) {
  return texts.size() == 1 ? nlohmann::json(texts[0]) : nlohmann::json(texts);
}

inline nlohmann::json text_fields(const TextExample& e) {
  return {{"clean_text", e.clean},
          {"corrupted_text", e.corrupted},
          {"answer_text", text_set_json(e.answer)},
          {"wrong_text", text_set_json(e.wrong)}};
}

}  // namespace detail

/// The token ids of a text example, checked as a task file line is; `where` names it in errors.
inline TaskExample tokenize_example(const TextExample& e, const Tokenizer& tokenizer, const std::string& where) {
  return circuitry::detail::read_example(detail::text_fields(e), [&tokenizer] { return &tokenizer; }, tokenizer.vocab_size(),
                                         std::numeric_limits<std::size_t>::max(), where);
}

/// One task file line with the text fields, the ids and the extra keys.
inline nlohmann::ordered_json task_line(const TextExample& e, const TaskExample& ids) {
  nlohmann::ordered_json line = {{"clean_text", e.clean},
                                 {"corrupted_text", e.corrupted},
                                 {"answer_text", detail::text_set_json(e.answer)},
                                 {"wrong_text", detail::text_set_json(e.wrong)},
                                 {"clean", ids.clean},
                                 {"corrupted", ids.corrupted},
                                 {"answer", token_set_json(ids.answer)},
                                 {"wrong", token_set_json(ids.wrong)}};
  for (const auto& [key, value] : e.extra.items()) line[key] = value;
  return line;
}

/// A generated task as the lines of a task file: text and ids (what `circuitry task` writes).
inline std::string text_task_lines(const std::vector<TextExample>& examples, const Tokenizer& tokenizer) {
  std::string text;
  for (std::size_t i = 0; i < examples.size(); ++i)
    text += task_line(examples[i], tokenize_example(examples[i], tokenizer, "generated example " + std::to_string(i + 1)))
                .dump() +
            '\n';
  return text;
}

}  // namespace circuitry::text
