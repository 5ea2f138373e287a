// Text: the byte-level BPE tokenizers against ids written by Hugging Face tokenizers and tiktoken
// (tests/make_tokenizer_fixtures.py): GPT-2's, and tiny ones in the styles of Pythia, Llama 3 and
// Qwen2; the pre-tokenization patterns, NFC, added tokens, round trips, invalid UTF-8 and bad
// tokenizer files.
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <circuitry/text/added_tokens.hpp>
#include <circuitry/text/bpe_tokenizer.hpp>
#include <circuitry/text/nfc.hpp>
#include <circuitry/text/pretokenizer.hpp>

#include "error_check.hpp"

namespace {

using circuitry::text::ByteLevelBpeTokenizer;

const ByteLevelBpeTokenizer& gpt2() {
  static const ByteLevelBpeTokenizer tokenizer = ByteLevelBpeTokenizer::from_directory(CIRCUITRY_SOURCE_DIR "/data/gpt2-bpe");
  return tokenizer;
}

/// tests/fixtures/tokenizer/<file>, parsed.
nlohmann::json tokenizer_fixture(const std::string& file) {
  std::ifstream in(CIRCUITRY_FIXTURES_DIR "/tokenizer/" + file);
  REQUIRE(bool(in));
  return nlohmann::json::parse(in);
}

/// The tiny tokenizer of a style ("pythia", "llama3", "qwen2"), loaded once.
const ByteLevelBpeTokenizer& styled(const std::string& style) {
  static std::map<std::string, ByteLevelBpeTokenizer> loaded;
  auto it = loaded.find(style);
  if (it == loaded.end())
    it = loaded.emplace(style, ByteLevelBpeTokenizer::from_directory(CIRCUITRY_FIXTURES_DIR "/tokenizer/" + style)).first;
  return it->second;
}

using Pieces = std::vector<std::string>;

Pieces pretokens(circuitry::text::PreTokenizer kind, const std::string& s) {
  Pieces out;
  circuitry::text::for_each_pretoken(kind, s, [&](std::string_view w) { out.emplace_back(w); });
  return out;
}

std::string nfc(const std::string& s) {
  std::string out;
  circuitry::text::append_nfc(s, out);
  return out;
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
  CHECK(gpt2().encode("<|endoftext|>") == std::vector<int>{50256});
  CHECK(gpt2().token_text(50256) == "<|endoftext|>");
  CHECK(gpt2().token_text(220) == " ");
  CHECK(gpt2().token_text(198) == "\n");
  CHECK(gpt2().encode("Hello world") == std::vector<int>{15496, 995});
}

TEST_CASE("every fixture: the ids of Hugging Face and tiktoken, and decode(encode(s)) == s") {
  const nlohmann::json cases = tokenizer_fixture("cases.json");
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
  auto pieces = [](const std::string& s) { return pretokens(circuitry::text::PreTokenizer::gpt2, s); };
  using V = Pieces;
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
  const ByteLevelBpeTokenizer t = ByteLevelBpeTokenizer::from_strings(tiny_vocab_json(), "#version: 0.2\na b\nab c\n", "a test");
  CHECK(t.vocab_size() == 259);
  CHECK(t.encode("<|endoftext|>") == std::vector<int>{258});
  CHECK(t.encode("abc") == std::vector<int>{257});
  CHECK(t.encode("abd") == std::vector<int>{256, 'd'});
  CHECK(t.encode("bc") == std::vector<int>{'b', 'c'});
}

TEST_CASE("bad vocabulary files are one clear error naming the file") {
  const std::string good_merges = "#version: 0.2\na b\nab c\n";
  auto load = [](const std::string& name, const std::string& vocab, const std::string& merges) {
    const auto dir = temp_dir_with(name, {{"vocab.json", vocab}, {"merges.txt", merges}});
    return ByteLevelBpeTokenizer::from_directory(dir);
  };
  CHECK(load("good", tiny_vocab_json(), good_merges).vocab_size() == 259);
  CHECK_ERROR(load("json", "{\"a\": 0,", good_merges), "vocab.json", "not valid JSON");
  CHECK_ERROR(load("array", "[1, 2]", good_merges), "vocab.json", "not a BPE vocabulary");
  CHECK_ERROR(load("ids", tiny_vocab_json(5), good_merges), "vocab.json", "id 263", "0..258");
  CHECK_ERROR(load("no-merges", tiny_vocab_json(), "#version: 0.2\n"), "merges.txt", "no merges");
  CHECK_ERROR(load("unknown", tiny_vocab_json(), "#version: 0.2\na b\nab x\n"), "merges.txt line 3", "'abx'", "not in");
  CHECK_ERROR(load("shape", tiny_vocab_json(), "#version: 0.2\na b c\n"), "merges.txt line 2", "two symbols");
  CHECK_ERROR(ByteLevelBpeTokenizer::from_directory(temp_dir_with("empty", {})), "no tokenizer here");
  CHECK_ERROR(ByteLevelBpeTokenizer::from_strings("{\"a\": 0}", good_merges, "the test input"), "vocab.json of the test input",
              "no <|endoftext|>");
  // A vocabulary without some byte tokens loads; a text that needs one of them is the error.
  const auto bytes_missing = ByteLevelBpeTokenizer::from_strings("{\"a\": 0, \"b\": 1, \"ab\": 2, \"<|endoftext|>\": 3}",
                                                                 "a b\n", "the test input");
  CHECK(bytes_missing.encode("abab") == std::vector<int>{2, 2});
  CHECK_ERROR(bytes_missing.encode("ab ab"), "vocab.json of the test input", "needs byte 0x20", "no token for it");
  CHECK_ERROR(bytes_missing.encode("c"), "vocab.json of the test input", "needs byte 0x63");
  CHECK_FALSE(ByteLevelBpeTokenizer::directory_has_tokenizer(temp_dir_with("none", {})));
}

TEST_CASE("a Hugging Face tokenizer.json") {
  const nlohmann::json vocab = nlohmann::json::parse(tiny_vocab_json());
  nlohmann::json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b", {"ab", "c"}}}}},
                      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}}};
  const auto dir = temp_dir_with("hf", {{"tokenizer.json", j.dump()}});
  CHECK(ByteLevelBpeTokenizer::directory_has_tokenizer(dir));
  CHECK(ByteLevelBpeTokenizer::from_directory(dir).encode("abc") == std::vector<int>{257});
  j["model"]["type"] = "WordPiece";
  CHECK_ERROR(ByteLevelBpeTokenizer::from_directory(temp_dir_with("hf-wp", {{"tokenizer.json", j.dump()}})), "tokenizer.json", "WordPiece");
}

TEST_CASE("every fixture of the Pythia, Llama 3, Qwen2 and SmolLM2 styles: the ids of Hugging Face tokenizers") {
  for (const std::string style : {"pythia", "llama3", "qwen2", "smollm2"}) {
    INFO("style: " << style);
    const ByteLevelBpeTokenizer& t = styled(style);
    const nlohmann::json cases = tokenizer_fixture(style + "/cases.json");
    CHECK(cases.size() >= 300);
    std::size_t mismatches = 0;
    for (const auto& c : cases) {
      const std::string text = c["text"].get<std::string>();
      if (c.contains("missing_byte")) {  // tokenizers drops the byte; circuitry says which it is
        CHECK_ERROR(t.encode(text), "needs byte " + c["missing_byte"].get<std::string>());
        continue;
      }
      const std::vector<int> expected = c["ids"].get<std::vector<int>>();
      const std::vector<int> got = t.encode(text);
      if (got != expected) {
        ++mismatches;
        INFO("text: " << nlohmann::json(text).dump());
        CHECK(got == expected);
      }
      // decode gives the text back, NFC-normalized for Pythia and Qwen2 ("decoded" where it differs)
      CHECK(t.decode(got) == c.value("decoded", text));
    }
    CHECK(mismatches == 0);
  }
}

TEST_CASE("the styles' vocabularies and added tokens") {
  const auto& pythia = styled("pythia");
  CHECK(pythia.vocab_size() == 607);
  CHECK(pythia.encode("<|endoftext|><|padding|>") == std::vector<int>{0, 1});
  // GPT-NeoX's runs of spaces are added tokens of the normalized text: "a   b" is a, "   ", b,
  // not GPT-2's a, "  ", " b"; the longest run wins (8 + 4 spaces for 12).
  const std::vector<int> spaced = pythia.encode("a   b");
  REQUIRE(spaced.size() == 3);
  CHECK(pythia.token_text(spaced[1]) == "   ");
  CHECK(pythia.encode(std::string(12, ' ')) == std::vector<int>{600, 604});
  // NFC: the decomposed and the composed é are the same tokens.
  CHECK(pythia.encode("Cafe\xCC\x81") == pythia.encode("Caf\xC3\xA9"));

  const auto& llama3 = styled("llama3");
  CHECK(llama3.vocab_size() == 609);
  CHECK(llama3.encode("<|begin_of_text|>") == std::vector<int>{601});
  CHECK(llama3.token_text(608) == "<|eot_id|>");
  // ignore_merges: " circuitry" is one token, although its merges would not rebuild it.
  CHECK(llama3.encode(" circuitry") == std::vector<int>{600});
  CHECK(llama3.encode("Cafe\xCC\x81") != llama3.encode("Caf\xC3\xA9"));  // no normalizer

  const auto& qwen2 = styled("qwen2");
  CHECK(qwen2.encode("<|im_start|>user<|im_end|>").front() == 601);
  CHECK(qwen2.encode("1234").size() == 4);  // one digit a word
}

TEST_CASE("SmolLM2's tokenizer.json: byte_fallback on ByteLevel, an empty normalizer Sequence, missing byte tokens") {
  const nlohmann::json j = tokenizer_fixture("smollm2/tokenizer.json");
  CHECK(j["model"]["byte_fallback"] == true);
  CHECK(j["normalizer"] == nlohmann::json::parse(R"({"type": "Sequence", "normalizers": []})"));
  const auto& smol = styled("smollm2");
  CHECK(smol.vocab_size() == 600);
  // 21 byte tokens are missing, as in SmolLM2's vocabulary: loading works, a text that needs one
  // is an error naming the byte (Hugging Face tokenizers drops the byte: "a\x04b" -> [a, b]).
  CHECK_ERROR(smol.encode("a\x04" "b"), "smollm2/tokenizer.json: model.vocab", "needs byte 0x04");
  CHECK_ERROR(smol.encode("x\xF1\x90\x80\x80"), "needs byte 0xF1");
  CHECK(smol.encode("a\x05" "b").size() == 3);  // byte 0x05 is there
  // Digits one by one; the space before a digit is a word of its own (the piece before ends in it).
  CHECK(smol.encode("in 2024").size() == 6);
  using circuitry::text::PreTokenizer;
  auto pieces = [](const std::string& s) { return pretokens(PreTokenizer::digits_then_gpt2, s); };
  CHECK(pieces("in 2024,") == Pieces{"in", " ", "2", "0", "2", "4", ","});
  CHECK(pieces("a  1") == Pieces{"a", "  ", "1"});
  CHECK(pieces("1,234.5") == Pieces{"1", ",", "2", "3", "4", ".", "5"});
  CHECK(pieces("x\xC2\xBD y") == Pieces{"x", "\xC2\xBD", " y"});  // U+00BD (No) is a number
  CHECK(pieces("it's 5'o") == Pieces{"it", "'s", " ", "5", "'", "o"});
  CHECK(pieces("") == Pieces{});
}

TEST_CASE("the Llama 3 and Qwen2 pre-tokenization patterns' rules (as Hugging Face tokenizers splits)") {
  using circuitry::text::PreTokenizer;
  for (const PreTokenizer kind : {PreTokenizer::llama3, PreTokenizer::qwen2}) {
    auto pieces = [&](const std::string& s) { return pretokens(kind, s); };
    // Contractions in any case; U+017F (long s) folds to s.
    CHECK(pieces("DON'T") == Pieces{"DON", "'T"});
    CHECK(pieces("it'S") == Pieces{"it", "'S"});
    CHECK(pieces("'\xC5\xBF" "a") == Pieces{"'\xC5\xBF", "a"});
    CHECK(pieces("'LL'Ve") == Pieces{"'LL", "'Ve"});
    // One character that is no letter, number or line end joins the letters after it.
    CHECK(pieces("\tword") == Pieces{"\tword"});
    CHECK(pieces("(word") == Pieces{"(word"});
    CHECK(pieces("\xC2\xA0word") == Pieces{"\xC2\xA0word"});
    CHECK(pieces("\xF0\x9F\x98\x80word") == Pieces{"\xF0\x9F\x98\x80word"});
    CHECK(pieces("  word") == Pieces{" ", " word"});
    // Symbols keep their line ends; whitespace runs end at their last line end.
    CHECK(pieces(" !\n") == Pieces{" !\n"});
    CHECK(pieces("word!\r\n") == Pieces{"word", "!\r\n"});
    CHECK(pieces("!!!\r\n\r\nx") == Pieces{"!!!\r\n\r\n", "x"});
    CHECK(pieces("a\r\nb") == Pieces{"a", "\r\n", "b"});
    CHECK(pieces("a \n b") == Pieces{"a", " \n", " b"});
    CHECK(pieces("x \n\n") == Pieces{"x", " \n\n"});
    CHECK(pieces("  \n  x") == Pieces{"  \n", " ", " x"});
  }
  // Numbers: by threes in Llama 3, one by one in Qwen2.
  CHECK(pretokens(PreTokenizer::llama3, "1234567") == Pieces{"123", "456", "7"});
  CHECK(pretokens(PreTokenizer::llama3, "a1b22") == Pieces{"a", "1", "b", "22"});
  CHECK(pretokens(PreTokenizer::qwen2, "1234") == Pieces{"1", "2", "3", "4"});
  // The patterns are recognised character for character.
  CHECK(circuitry::text::pre_tokenizer_of_pattern(circuitry::text::kLlama3Pattern) == PreTokenizer::llama3);
  CHECK_FALSE(circuitry::text::pre_tokenizer_of_pattern("\\s+").has_value());
}

TEST_CASE("NFC as Hugging Face tokenizers computes it (Unicode 9.0 tables)") {
  CHECK(nfc("e\xCC\x81") == "\xC3\xA9");                                    // e + U+0301 -> U+00E9
  CHECK(nfc("\xE2\x84\xAB") == "\xC3\x85");                                 // U+212B ANGSTROM SIGN -> U+00C5
  CHECK(nfc("a\xCC\x81\xCC\x96") == "\xC3\xA1\xCC\x96");                    // marks reordered, then a + U+0301 composed
  CHECK(nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8") == "\xEA\xB0\x81");     // Hangul L V T -> U+AC01
  CHECK(nfc("\xE0\xA5\x98") == "\xE0\xA4\x95\xE0\xA4\xBC");                 // U+0958 is excluded from composition
  CHECK(nfc("\xCC\x81" "e") == "\xCC\x81" "e");                             // a leading mark stays
  CHECK(nfc("\xF0\x91\xA4\xB5\xF0\x91\xA4\xB0") == "\xF0\x91\xA4\xB5\xF0\x91\xA4\xB0");  // Unicode 13's U+11938 not made
  CHECK(nfc("e\xE1\xAB\x81\xCC\x81") == "e\xE1\xAB\x81\xCC\x81");         // U+1AC1 (Unicode 14) blocks as class 0
  CHECK(nfc("plain ASCII, caf\xC3\xA9 e\xCC\x81!") == "plain ASCII, caf\xC3\xA9 \xC3\xA9!");
  CHECK(circuitry::text::nfc_unchanged("plain ASCII, caf\xC3\xA9"));
  CHECK_FALSE(circuitry::text::nfc_unchanged("e\xCC\x81"));
}

TEST_CASE("added tokens are found leftmost-longest") {
  circuitry::text::AddedTokenMatcher m;
  m.add("ab", 1);
  m.add("abc", 2);
  m.add("bcd", 3);
  m.add("<|x|>", 4);
  std::vector<std::pair<std::string, int>> got;
  m.split("xabcdy<|x|><|x", [&](std::string_view piece, int id) { got.emplace_back(piece, id); });
  const std::vector<std::pair<std::string, int>> expected = {{"x", -1}, {"abc", 2}, {"dy", -1}, {"<|x|>", 4}, {"<|x", -1}};
  CHECK(got == expected);
  got.clear();
  circuitry::text::AddedTokenMatcher none;
  none.split("text", [&](std::string_view piece, int id) { got.emplace_back(piece, id); });
  CHECK(got == std::vector<std::pair<std::string, int>>{{"text", -1}});
}

TEST_CASE("tokenizer.json: what is not supported is one clear error naming it") {
  const nlohmann::json llama3 = tokenizer_fixture("llama3/tokenizer.json");
  auto load = [](const std::string& name, const nlohmann::json& j) {
    return ByteLevelBpeTokenizer::from_directory(temp_dir_with(name, {{"tokenizer.json", j.dump()}}));
  };
  CHECK(load("llama3", llama3).vocab_size() == 609);
  nlohmann::json j = llama3;
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\p{L}+|\\s+";
  CHECK_ERROR(load("pattern", j), "tokenizer.json", "unknown Split pattern", "\\\\p{L}+|\\\\s+");
  j = llama3;
  j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed";
  CHECK_ERROR(load("behavior", j), "tokenizer.json", "behavior Removed");
  j = llama3;
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  CHECK_ERROR(load("whitespace", j), "tokenizer.json", "pre_tokenizer Whitespace is not supported");
  j = llama3;
  j["normalizer"] = {{"type", "NFKC"}};
  CHECK_ERROR(load("nfkc", j), "tokenizer.json", "normalizer NFKC is not supported");
  j = llama3;
  j["model"]["type"] = "Unigram";
  CHECK_ERROR(load("unigram", j), "tokenizer.json", "SentencePiece");
  j = llama3;
  j["model"]["type"] = "WordLevel";
  CHECK_ERROR(load("wordlevel", j), "tokenizer.json", "the model is WordLevel, not BPE");
  j = llama3;
  j["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = "no";  // a wrong type is an Error too, not nlohmann's
  CHECK_ERROR(load("use-regex", j), "tokenizer.json: the ByteLevel pre_tokenizer", "\"use_regex\" is not true or false");
  j = llama3;
  j["normalizer"] = 7;
  CHECK_ERROR(load("normalizer-7", j), "tokenizer.json", "the normalizer 7 is not supported");
  j = llama3;
  j["model"]["dropout"] = 0.1;
  CHECK_ERROR(load("dropout", j), "tokenizer.json", "dropout");
  j = llama3;
  j["added_tokens"][0]["lstrip"] = true;
  CHECK_ERROR(load("lstrip", j), "tokenizer.json: added_tokens[0]", "<|begin_of_text|>", "lstrip");
  j = llama3;
  j["added_tokens"][1]["id"] = 5;
  CHECK_ERROR(load("clash", j), "tokenizer.json: added_tokens", "'<|end_of_text|>' has id 5, which", "gives to '&'");
  j = llama3;
  j["added_tokens"][1]["id"] = 601;
  CHECK_ERROR(load("twice", j), "tokenizer.json: added_tokens", "id 601 is given to two tokens");
  j = llama3;
  j["added_tokens"][1]["id"] = 700;
  CHECK_ERROR(load("gap", j), "tokenizer.json: added_tokens", "has id 700", "0..608");
  // Llama 2 / Mistral: SentencePiece-style tokenizer.json files are for load_tokenizer
  // (test_sentencepiece.cpp), as is a tokenizer.model alone (test_unigram.cpp).
  j = llama3;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"}, {"split", false}};
  j["model"]["byte_fallback"] = true;
  CHECK_ERROR(load("metaspace", j), "tokenizer.json", "SentencePiece-style", "load_tokenizer");
  j["pre_tokenizer"] = llama3["pre_tokenizer"];  // byte_fallback on a ByteLevel BPE changes nothing
  CHECK(load("byte-fallback", j).vocab_size() == 609);
  j["normalizer"] = {{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}};
  CHECK_ERROR(load("prepend", j), "tokenizer.json", "SentencePiece");
  j = llama3;
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFKC"}}}}};
  CHECK_ERROR(load("sequence", j), "tokenizer.json", "the normalizer Sequence [NFKC] is not supported");
  j = tokenizer_fixture("smollm2/tokenizer.json");
  j["pre_tokenizer"]["pretokenizers"][0]["individual_digits"] = false;
  CHECK_ERROR(load("digits", j), "tokenizer.json", "individual_digits false");
  j["pre_tokenizer"]["pretokenizers"][0]["individual_digits"] = true;
  j["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = false;
  CHECK_ERROR(load("digits-no-regex", j), "tokenizer.json", "after Digits has use_regex false");
  const auto sp = temp_dir_with("sentencepiece", {{"tokenizer.model", "not read"}});
  CHECK(ByteLevelBpeTokenizer::directory_has_tokenizer(sp));
  CHECK_ERROR(ByteLevelBpeTokenizer::from_directory(sp), (sp / "tokenizer.model").string(), "SentencePiece", "load_tokenizer");
}

TEST_CASE("a directory's tokenizer.json comes before its vocab.json + merges.txt") {
  const auto dir = temp_dir_with("both", {{"tokenizer.json", tokenizer_fixture("qwen2/tokenizer.json").dump()},
                                          {"vocab.json", "not read"},
                                          {"merges.txt", "not read"}});
  CHECK(ByteLevelBpeTokenizer::from_directory(dir).encode("12") == styled("qwen2").encode("12"));
}

}  // TEST_SUITE("tokenizer")
