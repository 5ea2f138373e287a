// Text: the GPT-2 tokenizer against ids written by Hugging Face tokenizers and tiktoken
// (tests/make_tokenizer_fixtures.py), round trips, invalid UTF-8 and bad vocabulary files.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <circuitry/text/bpe_tokenizer.hpp>

#include "error_check.hpp"

namespace {

using circuitry::text::Gpt2Tokenizer;

const Gpt2Tokenizer& gpt2() {
  static const Gpt2Tokenizer tokenizer = Gpt2Tokenizer::from_directory(CIRCUITRY_SOURCE_DIR "/data/gpt2-bpe");
  return tokenizer;
}

nlohmann::json tokenizer_cases() {
  std::ifstream in(CIRCUITRY_FIXTURES_DIR "/tokenizer/cases.json");
  REQUIRE(bool(in));
  return nlohmann::json::parse(in);
}

/// A fresh directory under the system's temporary folder holding the given files.
std::filesystem::path temp_dir_with(const std::string& name, const std::vector<std::pair<std::string, std::string>>& files) {
  const auto dir = std::filesystem::temp_directory_path() / ("circuitry-test-text-" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  for (const auto& [file, text] : files) std::ofstream(dir / file, std::ios::binary) << text;
  return dir;
}

// A tiny GPT-2-shaped vocabulary: the 256 byte tokens (in bytes_to_unicode spelling), two merges
// and <|endoftext|>.
std::string tiny_vocab_json(int shift_last_id = 0) {
  nlohmann::json v = nlohmann::json::object();
  const auto map = circuitry::text::bytes_to_unicode();
  for (int b = 0; b < 256; ++b) {
    std::string s;
    const char32_t c = map[std::size_t(b)];
    if (c < 0x80) s.push_back(char(c));
    else s += {char(0xC0 | (c >> 6)), char(0x80 | (c & 0x3F))};
    v[s] = b;
  }
  v["ab"] = 256;
  v["abc"] = 257;
  v["<|endoftext|>"] = 258 + shift_last_id;
  return v.dump();
}

}  // namespace

TEST_SUITE("tokenizer") {

TEST_CASE("GPT-2 vocabulary shape") {
  CHECK(gpt2().vocab_size() == 50257);
  CHECK(gpt2().end_of_text() == 50256);
  CHECK(gpt2().token_text(50256) == "<|endoftext|>");
  CHECK(gpt2().token_text(220) == " ");
  CHECK(gpt2().token_text(198) == "\n");
  CHECK(gpt2().encode("Hello world") == std::vector<int>{15496, 995});
}

TEST_CASE("every fixture: the ids of Hugging Face and tiktoken, and decode(encode(s)) == s") {
  const nlohmann::json cases = tokenizer_cases();
  CHECK(cases.size() >= 400);
  std::size_t mismatches = 0;
  for (const auto& c : cases) {
    const std::string text = c["text"].get<std::string>();
    const std::vector<int> expected = c["ids"].get<std::vector<int>>();
    const std::vector<int> got = gpt2().encode(text);
    if (got != expected) {
      ++mismatches;
      INFO("text: " << nlohmann::json(text).dump());
      CHECK(got == expected);
    }
    CHECK(gpt2().decode(got) == text);
  }
  CHECK(mismatches == 0);
}

TEST_CASE("the pre-tokenization pattern's rules") {
  auto pieces = [](const std::string& s) {
    std::vector<std::string> out;
    circuitry::text::detail::for_each_pretoken(s, [&](std::string_view w) { out.emplace_back(w); });
    return out;
  };
  using V = std::vector<std::string>;
  // \s+(?!\S): a run of spaces before a word gives its last space to the word...
  CHECK(pieces("a   b") == V{"a", "  ", " b"});
  // ...but trailing whitespace stays one run, and only U+0020 joins the next word.
  CHECK(pieces("x   ") == V{"x", "   "});
  CHECK(pieces("a\tb") == V{"a", "\t", "b"});
  CHECK(pieces("a \tb") == V{"a", " ", "\t", "b"});
  CHECK(pieces("a\n\n b") == V{"a", "\n\n", " b"});
  // Contractions, case-sensitive; letters, numbers and other symbols each make their own run.
  CHECK(pieces("don't") == V{"don", "'t"});
  CHECK(pieces("DON'T") == V{"DON", "'", "T"});
  CHECK(pieces("''s") == V{"''", "s"});
  CHECK(pieces("abc123!? x") == V{"abc", "123", "!?", " x"});
  CHECK(pieces("caf\xC3\xA9 \xE2\x85\xAB") == V{"caf\xC3\xA9", " \xE2\x85\xAB"});  // café Ⅻ (a number)
  CHECK(pieces("a\xC2\xA0" "b") == V{"a", "\xC2\xA0", "b"});  // a no-break space is \s but not ' '
  CHECK(pieces("a\xE2\x80\x8B" "b") == V{"a", "\xE2\x80\x8B", "b"});  // a zero-width space is not \s: "other"
}

TEST_CASE("<|endoftext|> is the special token; its fragments are ordinary text") {
  const auto& t = gpt2();
  CHECK(t.encode("<|endoftext|>") == std::vector<int>{50256});
  const std::vector<int> ids = t.encode("a<|endoftext|>b");
  REQUIRE(ids.size() == 3);
  CHECK(ids[1] == 50256);
  CHECK(ids[0] == t.encode("a")[0]);
  CHECK(t.encode("<|endoftext|><|endoftext|>") == std::vector<int>{50256, 50256});
  CHECK(t.encode("<|endoftext").size() > 1);
  CHECK(t.decode(t.encode("x <|endoftext|>\ny")) == "x <|endoftext|>\ny");
}

TEST_CASE("invalid UTF-8 is an error naming the byte") {
  const auto& t = gpt2();
  CHECK_ERROR(t.encode(std::string("ab\xC0\xAF", 4)), "invalid UTF-8 at byte 2", "overlong");
  CHECK_ERROR(t.encode(std::string("\xE0\x80\xAF", 3)), "byte 0", "overlong");
  CHECK_ERROR(t.encode(std::string("\xF0\x80\x80\xAF", 4)), "overlong");
  CHECK_ERROR(t.encode(std::string("x\x80y", 3)), "byte 1", "continuation byte with no lead");
  CHECK_ERROR(t.encode(std::string("abc\xE2\x82", 5)), "byte 3", "cut short");
  CHECK_ERROR(t.encode(std::string("\xE2\x82x", 3)), "cut short");
  CHECK_ERROR(t.encode(std::string("a\xED\xA0\x80", 4)), "byte 1", "surrogate");
  CHECK_ERROR(t.encode(std::string("\xF4\x90\x80\x80", 4)), "above U+10FFFF");
  CHECK_ERROR(t.encode(std::string("\xFF", 1)), "0xFF");
  CHECK(t.encode(std::string("\xF4\x8F\xBF\xBF", 4)).size() >= 1);  // U+10FFFF itself is fine
}

TEST_CASE("decode and token_text reject ids out of range") {
  CHECK_ERROR(gpt2().decode({1, 50257}), "token id 50257", "50257 tokens");
  CHECK_ERROR(gpt2().token_text(-1), "token id -1");
}

TEST_CASE("a tiny vocabulary from strings: merges by rank") {
  const Gpt2Tokenizer t = Gpt2Tokenizer::from_strings(tiny_vocab_json(), "#version: 0.2\na b\nab c\n", "a test");
  CHECK(t.vocab_size() == 259);
  CHECK(t.end_of_text() == 258);
  CHECK(t.encode("abc") == std::vector<int>{257});
  CHECK(t.encode("abd") == std::vector<int>{256, 'd'});
  CHECK(t.encode("bc") == std::vector<int>{'b', 'c'});
}

TEST_CASE("bad vocabulary files are one clear error naming the file") {
  const std::string good_merges = "#version: 0.2\na b\nab c\n";
  auto load = [](const std::string& name, const std::string& vocab, const std::string& merges) {
    const auto dir = temp_dir_with(name, {{"vocab.json", vocab}, {"merges.txt", merges}});
    return Gpt2Tokenizer::from_directory(dir);
  };
  CHECK(load("good", tiny_vocab_json(), good_merges).vocab_size() == 259);
  CHECK_ERROR(load("json", "{\"a\": 0,", good_merges), "vocab.json", "not valid JSON");
  CHECK_ERROR(load("array", "[1, 2]", good_merges), "vocab.json", "not a GPT-2 vocabulary");
  CHECK_ERROR(load("ids", tiny_vocab_json(5), good_merges), "vocab.json", "id 263", "0..258");
  CHECK_ERROR(load("no-merges", tiny_vocab_json(), "#version: 0.2\n"), "merges.txt", "no merges");
  CHECK_ERROR(load("unknown", tiny_vocab_json(), "#version: 0.2\na b\nab x\n"), "merges.txt line 3", "'abx'", "not in");
  CHECK_ERROR(load("shape", tiny_vocab_json(), "#version: 0.2\na b c\n"), "merges.txt line 2", "two symbols");
  CHECK_ERROR(Gpt2Tokenizer::from_directory(temp_dir_with("empty", {})), "no tokenizer here");
  CHECK_ERROR(Gpt2Tokenizer::from_strings("{\"a\": 0}", good_merges, "the test input"), "vocab.json of the test input", "byte");
  CHECK_FALSE(Gpt2Tokenizer::directory_has_tokenizer(temp_dir_with("none", {})));
}

TEST_CASE("a Hugging Face tokenizer.json") {
  const nlohmann::json vocab = nlohmann::json::parse(tiny_vocab_json());
  nlohmann::json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b", {"ab", "c"}}}}},
                      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}}};
  const auto dir = temp_dir_with("hf", {{"tokenizer.json", j.dump()}});
  CHECK(Gpt2Tokenizer::directory_has_tokenizer(dir));
  CHECK(Gpt2Tokenizer::from_directory(dir).encode("abc") == std::vector<int>{257});
  j["model"]["type"] = "WordPiece";
  CHECK_ERROR(Gpt2Tokenizer::from_directory(temp_dir_with("hf-wp", {{"tokenizer.json", j.dump()}})), "tokenizer.json", "WordPiece");
}

}  // TEST_SUITE("tokenizer")
