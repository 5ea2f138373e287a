// Tasks from text: the generators (IOI, Greater-Than, docstring, induction) and text task
// files, with the real GPT-2 vocabulary (data/gpt2-bpe); a random GPT-2-vocabulary model runs
// a generated task end to end.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <circuitry/circuitry.hpp>
#include <circuitry/patching.hpp>

#include "error_check.hpp"

namespace {

using namespace circuitry;
using text::ByteLevelBpeTokenizer;
using text::TextExample;

const ByteLevelBpeTokenizer& gpt2() {
  static const ByteLevelBpeTokenizer tokenizer = ByteLevelBpeTokenizer::from_directory(CIRCUITRY_SOURCE_DIR "/data/gpt2-bpe");
  return tokenizer;
}

/// Writes `content` to a fresh file under the temporary folder and returns its path.
std::filesystem::path task_file(const std::string& name, const std::string& content) {
  const auto dir = std::filesystem::temp_directory_path() / "circuitry_test_tasks";
  std::filesystem::create_directories(dir);
  const auto path = dir / name;
  std::ofstream(path) << content;
  return path;
}

/// Every generated example tokenizes (equal lengths, one token per answer and wrong text),
/// its answer and wrong sets are disjoint, and the same seed gives the same examples.
template <class Make>
std::vector<TaskExample> check_generator(Make make) {
  const std::vector<TextExample> examples = make(40, 7u);
  REQUIRE(examples.size() == 40);
  std::vector<TaskExample> ids;
  for (std::size_t i = 0; i < examples.size(); ++i) {
    const TaskExample e = text::tokenize_example(examples[i], gpt2(), "example " + std::to_string(i));
    CHECK(e.clean.size() == e.corrupted.size());
    CHECK(e.clean != e.corrupted);
    CHECK(e.answer.size() == examples[i].answer.size());
    for (int a : e.answer) CHECK(std::find(e.wrong.begin(), e.wrong.end(), a) == e.wrong.end());
    ids.push_back(e);
  }
  const std::vector<TextExample> again = make(40, 7u), other = make(40, 8u);
  bool same = true, differs = false;
  for (std::size_t i = 0; i < examples.size(); ++i) {
    same = same && again[i].clean == examples[i].clean && again[i].corrupted == examples[i].corrupted &&
           again[i].answer == examples[i].answer && again[i].wrong == examples[i].wrong;
    differs = differs || other[i].clean != examples[i].clean;
  }
  CHECK(same);
  CHECK(differs);
  return ids;
}

std::size_t count(const std::vector<int>& seq, int id) { return static_cast<std::size_t>(std::count(seq.begin(), seq.end(), id)); }

/// A tiny fixture tokenizer (tests/fixtures/tokenizer/STYLE) with one merge more, `left` + `right`,
/// so that the noun " tour" is one token (the fixtures are too small for any of the paper's
/// nouns), and, with `llama2_bos`, Llama 2's post-processor (TemplateProcessing, <s> = 1 before $A).
std::unique_ptr<text::Tokenizer> fixture_with_tour(const std::string& style, const std::string& left, const std::string& right,
                                                   bool llama2_bos = false) {
  const std::string path = std::string(CIRCUITRY_FIXTURES_DIR) + "/tokenizer/" + style + "/tokenizer.json";
  nlohmann::json j = nlohmann::json::parse(std::ifstream(path));
  int id = 0;
  for (const auto& [token, value] : j["model"]["vocab"].items()) id = std::max(id, value.get<int>() + 1);
  for (const auto& added : j["added_tokens"]) id = std::max(id, added["id"].get<int>() + 1);
  j["model"]["vocab"][left + right] = id;
  j["model"]["merges"].push_back(nlohmann::json::array({left, right}));
  if (llama2_bos)
    j["post_processor"] = nlohmann::json::parse(R"({"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}})");
  return text::load_tokenizer_json(j.dump(), path);
}

}  // namespace

TEST_SUITE("tasks") {

TEST_CASE("IOI: S twice and IO once in the clean prompt, three distinct fresh names in ABC") {
  const auto ids = check_generator([](std::size_t n, unsigned seed) { return text::make_ioi(n, seed, gpt2()); });
  const auto texts = text::make_ioi(40, 7, gpt2());
  std::set<std::string> orders;
  std::set<int> templates;
  std::set<int> names;
  for (const auto& w : text::kIoiNames) names.insert(text::word_token(gpt2(), " " + std::string(w), "test"));
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const TaskExample& e = ids[i];
    REQUIRE(e.answer.size() == 1);
    REQUIRE(e.wrong.size() == 1);
    const int io = e.answer[0], s = e.wrong[0];
    CHECK(count(e.clean, io) == 1);
    CHECK(count(e.clean, s) == 2);
    std::vector<int> abc;
    for (int t : e.corrupted)
      if (names.count(t)) abc.push_back(t);
    REQUIRE(abc.size() == 3);
    CHECK(std::set<int>(abc.begin(), abc.end()).size() == 3);
    for (int t : abc) CHECK((t != io && t != s));
    CHECK(texts[i].extra["task"] == "ioi");
    orders.insert(texts[i].extra["order"].get<std::string>());
    templates.insert(texts[i].extra["template"].get<int>());
    CHECK(texts[i].clean.substr(texts[i].clean.size() - 3) == " to");
  }
  CHECK(orders.size() == 2);  // both BABA and ABBA
  CHECK(templates.size() > 5);
}

TEST_CASE("Greater-Than: the years split as [' XX', 'YY']; answers are the later two-digit tokens") {
  const auto ids = check_generator([](std::size_t n, unsigned seed) { return text::make_greater_than(n, seed, gpt2()); });
  const auto texts = text::make_greater_than(40, 7, gpt2());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const int year = texts[i].extra["year"].get<int>(), century = year / 100, yy = year % 100;
    CHECK(century >= 11);
    CHECK(century <= 17);
    CHECK(yy >= 2);
    CHECK(yy <= 98);
    CHECK(ids[i].answer.size() == std::size_t(99 - yy));
    CHECK(ids[i].answer.size() + ids[i].wrong.size() == 100);
    CHECK(gpt2().token_text(ids[i].clean.back()) == " " + std::to_string(century));
    CHECK(gpt2().token_text(ids[i].answer.front()) == (yy + 1 < 10 ? "0" : "") + std::to_string(yy + 1));
    CHECK(texts[i].corrupted.find(std::to_string(century) + "01 to") != std::string::npos);
  }
}

TEST_CASE("Greater-Than on digit tokenizers: the decisive-digit form (SmolLM2-style byte-level, SentencePiece with BOS)") {
  struct Style {
    std::string name, left, right;
    bool bos;
  };
  for (const Style& style : {Style{"smollm2", "\u0120to", "ur", false}, Style{"spm-legacy", "\u2581to", "ur", true},
                             Style{"llama3", "\u0120to", "ur", false}}) {
    CAPTURE(style.name);
    const auto tokenizer = fixture_with_tour(style.name, style.left, style.right, style.bos);
    CHECK_FALSE(text::greater_than_two_digit_form(*tokenizer));
    std::vector<int> digits;
    for (int d = 0; d < 10; ++d) digits.push_back(text::word_token(*tokenizer, std::to_string(d), "test"));
    std::vector<std::string> skipped;
    const auto texts = text::make_greater_than(40, 7, *tokenizer, &skipped);
    CHECK(skipped.size() == text::kGreaterThanNouns.size() - 1);  // " tour" alone is one token
    const auto again = text::make_greater_than(40, 7, *tokenizer);
    std::set<int> seen_digits;
    for (std::size_t i = 0; i < texts.size(); ++i) {
      CAPTURE(texts[i].clean);
      CHECK(texts[i].clean == again[i].clean);
      CHECK(texts[i].extra["form"] == "decisive-digit");
      const int year = texts[i].extra["year"].get<int>(), century = year / 100, decade = year / 10 % 10, digit = year % 10;
      seen_digits.insert(digit);
      CHECK(century >= 11);
      CHECK(century <= 17);
      CHECK(decade >= 1);  // the corrupted 01 lies in an earlier decade
      CHECK(digit <= 8);   // some digit is greater
      CHECK(texts[i].clean.ends_with(" to the year " + std::to_string(century * 10 + decade)));
      CHECK(texts[i].corrupted.find(" " + std::to_string(century) + "01 to the year") != std::string::npos);
      const TaskExample e = text::tokenize_example(texts[i], *tokenizer, "example");
      REQUIRE(e.clean.size() == e.corrupted.size());
      // The prompt ends at the end year's decade: its own token where digits are single (Llama 3's
      // groups of three put it in "XXY1"); clean and corrupted differ only in the start year.
      CHECK(tokenizer->token_text(e.clean.back()).back() == char('0' + decade));
      std::size_t differ = 0;
      for (std::size_t t = 0; t < e.clean.size(); ++t) differ += e.clean[t] != e.corrupted[t];
      CHECK(differ >= 1);
      if (style.name != "llama3") {
        CHECK(e.clean.back() == digits[std::size_t(decade)]);
        CHECK(differ <= 2);  // the start year's last two digits
      }
      CHECK(e.answer == std::vector<int>(digits.begin() + digit + 1, digits.end()));
      CHECK(e.wrong == std::vector<int>(digits.begin(), digits.begin() + digit + 1));
      CHECK((e.clean.front() == 1) == style.bos);  // <s> first where the tokenizer puts it
      CHECK((e.corrupted.front() == 1) == style.bos);
    }
    CHECK(seen_digits.size() > 5);
  }
  // The ids Hugging Face tokenizers gives these prompts (encode with add_special_tokens: BOS).
  const auto spm = fixture_with_tour("spm-legacy", "\u2581to", "ur", true);
  const TaskExample e = text::tokenize_example({"The tour lasted from the year 1735 to the year 173",
                                                "The tour lasted from the year 1701 to the year 173", {"6"}, {"5"}, {}},
                                               *spm, "peer");
  CHECK(e.clean == std::vector<int>{1, 337, 1200, 370, 390, 416, 912, 437, 383, 919, 272, 605, 901, 936, 945, 934, 940, 313, 272, 605, 901, 936, 945, 934});
  CHECK(e.corrupted == std::vector<int>{1, 337, 1200, 370, 390, 416, 912, 437, 383, 919, 272, 605, 901, 936, 945, 922, 936, 313, 272, 605, 901, 936, 945, 934});
  const auto smol = fixture_with_tour("smollm2", "\u0120to", "ur");
  CHECK(text::tokenize_example({"The tour lasted from the year 1735 to the year 173", "The tour lasted from the year 1701 to the year 173", {"6"}, {"5"}, {}},
                               *smol, "peer")
            .clean == std::vector<int>{319, 600, 299, 282, 478, 577, 79, 253, 377, 202, 19, 25, 21, 23, 305, 253, 377, 202, 19, 25, 21});
  // GPT-2 keeps the two-digit form.
  CHECK(text::greater_than_two_digit_form(gpt2()));
}

TEST_CASE("BOS where the model's tokenizer puts it: post-processors and GGUF's add_bos_token; none for GPT-2") {
  const std::string dir = std::string(CIRCUITRY_FIXTURES_DIR) + "/tokenizer/";
  CHECK_FALSE(gpt2().bos().has_value());
  CHECK_FALSE(text::load_tokenizer(dir + "smollm2")->bos().has_value());     // ByteLevel post-processor
  CHECK_FALSE(text::load_tokenizer(dir + "spm-legacy")->bos().has_value());  // none in the file
  CHECK(text::load_tokenizer(dir + "llama3")->bos() == 601);                 // Sequence [ByteLevel, TemplateProcessing]
  CHECK(text::load_tokenizer(dir + "gguf-spm-llama/vocab.gguf")->bos() == 1);  // add_bos_token true
  CHECK(text::load_tokenizer(std::string(CIRCUITRY_FIXTURES_DIR) + "/gguf-llama/model.gguf")->bos() == 271);  // llama-bpe's default
  CHECK_FALSE(text::load_tokenizer(std::string(CIRCUITRY_FIXTURES_DIR) + "/gguf-gpt2/model.gguf")->bos().has_value());
  // A text line: BOS before clean and corrupted, never before an answer; a line with ids is read as given.
  const auto llama3 = text::load_tokenizer(dir + "llama3");
  const Task task = task_from_text(R"({"clean_text": "The year 1", "corrupted_text": "The year 2", "answer_text": "1", "wrong_text": "2"})"
                                   "\n" R"({"clean": [5, 6], "corrupted": [5, 7], "answer": 8, "wrong": 9})",
                                   "bos.jsonl", 609, 64, llama3.get());
  CHECK(task.examples[0].clean.front() == 601);
  CHECK(task.examples[0].corrupted.front() == 601);
  CHECK(task.examples[0].clean.size() == 1 + llama3->encode("The year 1").size());
  CHECK(task.examples[0].answer == llama3->encode_continuation("1"));
  CHECK(task.examples[1].clean == std::vector<int>{5, 6});
  // A BOS the model's vocabulary lacks, and a malformed post-processor, are errors.
  CHECK_ERROR(task_from_text(R"({"clean_text": "a", "corrupted_text": "b", "answer_text": "c", "wrong_text": "d"})", "small.jsonl", 600,
                             64, llama3.get()),
              "small.jsonl line 1", "BOS id 601", "vocab_size 600");
  nlohmann::json j = nlohmann::json::parse(std::ifstream(dir + "llama3/tokenizer.json"));
  j["post_processor"]["processors"][1]["special_tokens"]["<|begin_of_text|>"]["ids"] = {100000};
  CHECK_ERROR(text::load_tokenizer_json(j.dump(), "t.json"), "t.json", "special_tokens", "one id in the vocabulary");
}

TEST_CASE("docstring: the answer is the next def parameter; the corrupted docstring names other words") {
  const auto ids = check_generator([](std::size_t n, unsigned seed) { return text::make_docstring(n, seed, gpt2()); });
  const auto texts = text::make_docstring(40, 7, gpt2());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const TaskExample& e = ids[i];
    REQUIRE(e.answer.size() == 1);
    CHECK(e.wrong.size() == 13);                  // ACDC's wrong_answers: every other name drawn
    CHECK(count(e.clean, e.answer[0]) == 1);      // in the def, not yet in the docstring
    CHECK(count(e.corrupted, e.answer[0]) == 0);  // random_random: the matching parameters replaced
    CHECK(gpt2().token_text(e.clean.back()) == "param");
    CHECK(texts[i].clean.rfind("\ndef ", 0) == 0);
    // The leading and trailing def parameters stay: the def lines differ only in the middle three.
    const std::string clean_def = texts[i].clean.substr(0, texts[i].clean.find(')'));
    const std::string corrupted_def = texts[i].corrupted.substr(0, texts[i].corrupted.find(')'));
    const std::string first_param = clean_def.substr(clean_def.find("self, ") + 6, clean_def.find(',', clean_def.find("self, ") + 6) - clean_def.find("self, ") - 6);
    CHECK(corrupted_def.find(", " + first_param + ",") != std::string::npos);
    CHECK(clean_def.substr(clean_def.rfind(", ")) == corrupted_def.substr(corrupted_def.rfind(", ")));
  }
}

TEST_CASE("induction as text: the id task's structure over single-token words") {
  const auto ids = check_generator([](std::size_t n, unsigned seed) { return text::make_induction_text(n, seed, gpt2()); });
  for (const TaskExample& e : ids) {
    REQUIRE(e.answer.size() == 1);
    const auto first = std::find(e.clean.begin(), e.clean.end(), e.clean.back());
    CHECK(*(first + 1) == e.answer[0]);
    CHECK(count(e.clean, e.wrong[0]) == 0);
  }
}

TEST_CASE("a generator's words that are not one token are left out; too few left is an error naming one") {
  const std::vector<std::string> words = {"Mary", "Zaphod", "John"};
  std::vector<std::string> skipped;
  CHECK(text::single_token_words(gpt2(), words, 2, "ioi", "names", &skipped) == std::vector<std::string_view>{"Mary", "John"});
  CHECK(skipped == std::vector<std::string>{" Zaphod"});
  CHECK_ERROR(text::single_token_words(gpt2(), words, 3, "ioi", "names", nullptr), "ioi: 2 of the generator's 3 names",
              "the task needs 3", "\" Zaphod\" is 2 tokens");
  // A vocabulary that splits most names (the tiny SmolLM2-style one): IOI cannot be built.
  const auto smol = ByteLevelBpeTokenizer::from_directory(CIRCUITRY_FIXTURES_DIR "/tokenizer/smollm2");
  CHECK_ERROR(text::make_ioi(2, 1, smol), "ioi:", "of the generator's 100 names are one token", "needs 5");
}

TEST_CASE("a task whose lines all have ids asks for no tokenizer, text fields beside them or not") {
  std::size_t asked = 0;
  const TokenizerSource counting = [&] {
    ++asked;
    return &gpt2();
  };
  const std::string both = "{\"clean_text\": \"a b\", \"corrupted_text\": \"a c\", \"answer_text\": \" d\", \"wrong_text\": \" e\", "
                           "\"clean\": [1, 2], \"corrupted\": [1, 3], \"answer\": 4, \"wrong\": 5}\n";
  CHECK(task_from_text(both, "both.jsonl", 50257, 1024, counting).examples[0].clean == std::vector<int>{1, 2});
  CHECK(asked == 0);
  CHECK(task_from_text("{\"clean_text\": \"a b\", \"corrupted\": [1, 3], \"answer\": 4, \"wrong\": 5}\n", "text.jsonl", 50257,
                       1024, counting)
            .examples[0]
            .clean == gpt2().encode("a b"));
  CHECK(asked == 1);
}

TEST_CASE("text task files: tokenized as ids; equal lengths, one-token answers, non-empty sets") {
  const auto path = task_file("text.jsonl",
                              "{\"clean_text\": \"When Mary and John went to the store, John gave a drink to\", "
                              "\"corrupted_text\": \"When Alice and Bob went to the store, Carl gave a drink to\", "
                              "\"answer_text\": \" Mary\", \"wrong_text\": [\" John\", \" Bob\"]}\n"
                              "{\"clean\": [1, 2], \"corrupted\": [1, 3], \"answer\": [4, 5], \"wrong\": 6}\n");
  const Task task = read_task(path, 50257, 1024, &gpt2());
  REQUIRE(task.examples.size() == 2);
  CHECK(task.examples[0].clean == gpt2().encode("When Mary and John went to the store, John gave a drink to"));
  CHECK(task.examples[0].answer == std::vector<int>{gpt2().encode(" Mary")[0]});
  CHECK(task.examples[0].wrong.size() == 2);
  CHECK(task.examples[1].answer == std::vector<int>{4, 5});
  CHECK(task.examples[1].wrong == std::vector<int>{6});
  CHECK_ERROR(read_task(path, 50257, 1024), "line 1", "clean_text", "tokenizer");

  const auto unequal = task_file("unequal.jsonl",
                                 "{\"clean_text\": \"When Mary and John\", \"corrupted_text\": \"When Zaphod and John\", "
                                 "\"answer_text\": \" Mary\", \"wrong_text\": \" John\"}\n");
  CHECK_ERROR(read_task(unequal, 50257, 1024, &gpt2()), "unequal.jsonl line 1", "clean tokenizes to 4 tokens",
              "corrupted to 5");
  const auto multi = task_file("multi.jsonl",
                               "{\"clean_text\": \"a b\", \"corrupted_text\": \"a c\", \"answer_text\": \" Zaphod\", "
                               "\"wrong_text\": \" John\"}\n");
  CHECK_ERROR(read_task(multi, 50257, 1024, &gpt2()), "multi.jsonl line 1", "answer_text", "\" Zaphod\"", "2 tokens",
              "exactly one token");
  const auto empty = task_file("empty.jsonl", "{\"clean\": [1], \"corrupted\": [2], \"answer\": [], \"wrong\": 3}\n");
  CHECK_ERROR(read_task(empty, 50, 8), "empty.jsonl line 1", "\"answer\" is an empty list");
  const auto empty_text = task_file("empty_text.jsonl",
                                    "{\"clean_text\": \"a b\", \"corrupted_text\": \"a c\", \"answer_text\": \" x\", "
                                    "\"wrong_text\": []}\n");
  CHECK_ERROR(read_task(empty_text, 50257, 1024, &gpt2()), "empty_text.jsonl line 1", "\"wrong_text\" is an empty list");
  // (A JSON file cannot hold invalid UTF-8; a generated example can.)
  TextExample bad{"a \xff b", "a c d", {" x"}, {" y"}};
  CHECK_ERROR(text::tokenize_example(bad, gpt2(), "example 3"), "example 3", "clean_text", "UTF-8");
  const auto small_vocab = task_file("vocab.jsonl",
                                     "{\"clean_text\": \"When Mary\", \"corrupted_text\": \"When John\", "
                                     "\"answer_text\": \" Mary\", \"wrong_text\": \" John\"}\n");
  CHECK_ERROR(read_task(small_vocab, 41, 16, &gpt2()), "line 1", "outside the model's vocab_size 41");
}

TEST_CASE("write_task writes a single id as a number and a set as a list") {
  Task task;
  task.examples.push_back({{1, 2}, {1, 3}, {4}, {5, 6}});
  const auto path = task_file("written.jsonl", "");
  io::write_file_atomically_with(path, [&](std::ostream& out) { write_task(out, task); });
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  CHECK(line == "{\"clean\":[1,2],\"corrupted\":[1,3],\"answer\":4,\"wrong\":[5,6]}");
  const Task back = read_task(path, 10, 4);
  CHECK(back.examples[0].answer == std::vector<int>{4});
  CHECK(back.examples[0].wrong == std::vector<int>{5, 6});
}

TEST_CASE("a generated Greater-Than task runs on a random GPT-2-vocabulary model (EAP, answer-set metrics)") {
  ModelConfig c;
  c.n_layer = 1, c.n_head = 2, c.n_embd = 8, c.n_positions = 64, c.vocab_size = 50257, c.n_inner = 16;
  const auto model = Model<GPT2, double>::random(c, 3, 0.5);
  Task task;
  const auto examples = text::make_greater_than(4, 1, gpt2());
  for (std::size_t i = 0; i < examples.size(); ++i) task.examples.push_back(text::tokenize_example(examples[i], gpt2(), "gt"));
  const auto ptask = make_patching_task(model, task);
  for (auto kind : {MetricKind::LogitDiff, MetricKind::ProbDiff, MetricKind::LogitDiffMax, MetricKind::Loss}) {
    const auto eap = attribute(model, ptask, BuiltinMetric{kind}, Eap{});
    CHECK(std::isfinite(eap.clean_metric));
    CHECK(eap.clean_metric != eap.corrupted_metric);
  }
}

}  // TEST_SUITE("tasks")
