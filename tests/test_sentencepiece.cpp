// SentencePiece tokenizers (text/sentencepiece_*.hpp, load_tokenizer.hpp) against ids written by
// Hugging Face tokenizers and the sentencepiece library (tests/make_sentencepiece_fixtures.py):
// tokenizer.json files in the styles of Llama 2 (legacy), Mistral (Metaspace), tokenizers' own
// Metaspace defaults (split) and Gemma, and GGUF files with llama.cpp's "llama" tokenizer; byte
// fallback, text after other text, the task generators on such a vocabulary, and bad files.
#include <cstdint>
#include <filesystem>
#include <limits>
#include <utility>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <circuitry/io/read_file.hpp>
#include <circuitry/text/ioi.hpp>
#include <circuitry/text/load_tokenizer.hpp>
#include <circuitry/text/text_example.hpp>

#include "error_check.hpp"
#include "fuzz/harnesses.hpp"

namespace {

namespace fs = std::filesystem;
using circuitry::text::Tokenizer;

const std::string kFixtures = CIRCUITRY_FIXTURES_DIR "/tokenizer/";

nlohmann::json fixture_json(const std::string& file) {
  std::ifstream in(kFixtures + file);
  REQUIRE(bool(in));
  return nlohmann::json::parse(in);
}

/// A style's tokenizer (its directory, or its vocab.gguf for the gguf-* styles), loaded once.
const Tokenizer& spm(const std::string& style) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> loaded;
  auto it = loaded.find(style);
  if (it == loaded.end())
    it = loaded.emplace(style, circuitry::text::load_tokenizer(style.starts_with("gguf-") ? kFixtures + style + "/vocab.gguf"
                                                                                             : kFixtures + style)).first;
  return *it->second;
}

/// A fresh directory holding tokenizer.json = j.
fs::path dir_with_json(const std::string& name, const nlohmann::json& j) {
  const fs::path dir = fs::temp_directory_path() / ("circuitry-spm-test-" + name);
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << j.dump();
  return dir;
}

}  // namespace

TEST_SUITE("sentencepiece") {

TEST_CASE("every fixture text of every SentencePiece style: the reference's ids") {
  for (const std::string style : {"spm-legacy", "spm-metaspace", "spm-split", "spm-gemma", "gguf-spm-llama", "gguf-spm-gemma"}) {
    INFO("style: " << style);
    const Tokenizer& t = spm(style);
    const nlohmann::json cases = fixture_json(style + "/cases.json");
    CHECK(cases.size() >= 220);
    std::size_t mismatches = 0;
    for (const auto& c : cases) {
      const std::string text = c["text"].get<std::string>();
      const std::vector<int> got = t.encode(text);
      if (got != c["ids"].get<std::vector<int>>()) {
        ++mismatches;
        INFO("text: " << nlohmann::json(text).dump());
        CHECK(got == c["ids"].get<std::vector<int>>());
      }
    }
    CHECK(mismatches == 0);
  }
}

TEST_CASE("byte fallback: a character outside the vocabulary is its UTF-8 bytes' <0xNN> tokens") {
  for (const std::string style : {"spm-legacy", "spm-gemma", "gguf-spm-llama"}) {
    INFO("style: " << style);
    const Tokenizer& t = spm(style);
    const std::string parrot = "\xF0\x9F\xA6\x9C";  // U+1F99C, in no training text
    const std::vector<int> ids = t.encode_continuation(parrot);
    REQUIRE(ids.size() == 4);
    for (std::size_t i = 0; i < 4; ++i) CHECK(t.token_text(ids[i]) == parrot.substr(i, 1));
    CHECK(t.decode(ids) == parrot);
  }
}

TEST_CASE("text after other text: no '\u2581' put before it, so \" Mary\" is the one token '\u2581Mary'") {
  for (const std::string style : {"spm-legacy", "spm-metaspace", "spm-split", "spm-gemma", "gguf-spm-llama"}) {
    INFO("style: " << style);
    const Tokenizer& t = spm(style);
    const std::vector<int> mary = t.encode_continuation(" Mary");
    REQUIRE(mary.size() == 1);
    CHECK(t.token_text(mary[0]) == " Mary");
    const std::vector<int> sentence = t.encode("When Mary");
    CHECK(sentence.back() == mary[0]);
  }
  CHECK(spm("spm-legacy").encode(" Mary").size() > 1);       // Prepend: '\u2581\u2581Mary'
  CHECK(spm("spm-metaspace").encode(" Mary").size() == 1);   // Metaspace: no second '\u2581'
  CHECK(spm("spm-gemma").encode("Mary") == spm("spm-gemma").encode_continuation("Mary"));  // no prefix at all
  CHECK(spm("spm-legacy").decode(spm("spm-legacy").encode("a b")) == " a b");  // the prefix's space stays in
}

TEST_CASE("the task generators on a SentencePiece vocabulary: words and answers as they stand in the prompt") {
  const Tokenizer& t = spm("spm-legacy");
  std::vector<std::string> skipped;
  const auto examples = circuitry::text::make_ioi(6, 3, t, &skipped);
  CHECK(examples.size() == 6);
  CHECK(skipped.size() > 50);  // most of the 100 names are several tokens in this tiny vocabulary
  for (std::size_t i = 0; i < examples.size(); ++i) {
    const auto ids = circuitry::text::tokenize_example(examples[i], t, "example");
    CHECK(ids.clean == t.encode(examples[i].clean));
    REQUIRE(ids.answer.size() == 1);
    CHECK(t.token_text(ids.answer[0]) == examples[i].answer[0]);  // " Mary" -> '\u2581Mary'
  }
}

TEST_CASE("SentencePiece files: what is not supported or broken is one clear error") {
  using circuitry::text::load_tokenizer;
  const nlohmann::json legacy = fixture_json("spm-legacy/tokenizer.json");
  nlohmann::json j = legacy;
  j["model"]["type"] = "Unigram";
  CHECK_ERROR(load_tokenizer(dir_with_json("unigram", j)), "tokenizer.json", "model.vocab", "[piece, score]", "Unigram model");  // a BPE vocabulary
  j = legacy;
  j["model"]["unk_token"] = "<nope>";
  CHECK_ERROR(load_tokenizer(dir_with_json("unk", j)), "tokenizer.json", "'<nope>'", "not in the vocabulary");
  j = legacy;
  j["normalizer"]["normalizers"][0]["prepend"] = "_";
  CHECK_ERROR(load_tokenizer(dir_with_json("prepend", j)), "tokenizer.json", "Prepend normalizer adds \"_\"");
  j = legacy;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"}, {"split", false}};
  CHECK_ERROR(load_tokenizer(dir_with_json("both", j)), "tokenizer.json", "pre_tokenizer Metaspace after a Prepend normalizer");
  j = fixture_json("spm-metaspace/tokenizer.json");
  j["pre_tokenizer"]["prepend_scheme"] = "sometimes";
  CHECK_ERROR(load_tokenizer(dir_with_json("scheme", j)), "tokenizer.json", "prepend_scheme \"sometimes\"");
  // A byte token needed and missing: an Error naming the character and the byte.
  j = legacy;
  const int id_9c = j["model"]["vocab"]["<0x9C>"].get<int>();
  j["model"]["vocab"].erase("<0x9C>");
  j["model"]["vocab"]["<0x9c>"] = id_9c;  // the same id, no byte token (byte tokens are spelled in uppercase)
  const auto no_9c = load_tokenizer(dir_with_json("no-9c", j));
  CHECK(no_9c->encode("Mary").size() >= 1);
  CHECK_ERROR(no_9c->encode("\xF0\x9F\xA6\x9C"), "tokenizer.json: model.vocab", "0x9C", "no byte token");
  // The byte-level reader names what it is given.
  CHECK_ERROR(circuitry::text::ByteLevelBpeTokenizer::from_directory(kFixtures + "spm-legacy"), "SentencePiece-style", "load_tokenizer");
}

TEST_CASE("GGUF 'llama' tokenizer: scores, add_space_prefix, bos/eos, and broken metadata") {
  namespace io = circuitry::io;
  const io::GgufFile file = io::GgufFile::open(kFixtures + "gguf-spm-llama/vocab.gguf");
  const circuitry::text::GgufTokenizer read = circuitry::text::read_gguf_tokenizer(file);
  CHECK(read.sentencepiece);
  CHECK(read.bos_id == 1);
  CHECK(read.eos_id == 2);
  CHECK(read.spm.prefix == circuitry::text::SpacePrefix::every_piece);
  CHECK(circuitry::text::read_gguf_tokenizer(io::GgufFile::open(kFixtures + "gguf-spm-gemma/vocab.gguf")).spm.prefix ==
        circuitry::text::SpacePrefix::none);
  circuitry::text::SentencePieceConfig c = read.spm;
  c.scores.pop_back();
  CHECK_ERROR(circuitry::text::SentencePieceBpeTokenizer{c}, "tokenizer.ggml.tokens", "scores for", "one score per token");
  c = read.spm;
  c.scores[40] = std::numeric_limits<double>::infinity();
  CHECK_ERROR(circuitry::text::SentencePieceBpeTokenizer{c}, "the score of token 40 is not finite");
  c = read.spm;
  for (auto& [piece, id] : c.vocab)
    if (piece == "<0x9C>") piece = "<0x9c>";
  const circuitry::text::SentencePieceBpeTokenizer missing(c);
  CHECK_ERROR(missing.encode("\xF0\x9F\xA6\x9C"), "vocab.gguf: tokenizer.ggml.tokens", "0x9C", "no byte token");
}

TEST_CASE("the fuzz harnesses reach the SentencePiece tokenizers (their seeds end in success or an Error)") {
  const fs::path seeds = fs::path(CIRCUITRY_SOURCE_DIR) / "tests/fuzz/seeds";
  using Harness = void (*)(const std::uint8_t*, std::size_t);
  for (const auto& [folder, harness] : {std::pair<std::string, Harness>{"tokenizer", circuitry::fuzz::tokenizer},
                                        std::pair<std::string, Harness>{"gguf", circuitry::fuzz::gguf}})
    for (const auto& entry : fs::directory_iterator(seeds / folder)) {
      INFO("seed: " << entry.path().string());
      const std::string bytes = circuitry::io::read_regular_file(entry.path());
      CHECK_NOTHROW(circuitry::fuzz::run_one(harness, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
    }
}

}  // TEST_SUITE("sentencepiece")
