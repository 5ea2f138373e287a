// SentencePiece Unigram tokenizers and tokenizer.model files (text/unigram_*.hpp,
// text/sentencepiece_model.hpp, text/protobuf_wire.hpp) against the ids written by the
// sentencepiece library and Hugging Face tokenizers (tests/make_unigram_fixtures.py): every fixture
// text in both forms, round trips, the directory rules, and broken or unsupported files.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <circuitry/io/read_file.hpp>
#include <circuitry/text/load_tokenizer.hpp>

#include "error_check.hpp"
#include "fuzz/harnesses.hpp"

namespace {

namespace fs = std::filesystem;
using circuitry::text::Tokenizer;

const std::string kFixtures = CIRCUITRY_FIXTURES_DIR "/tokenizer/";

nlohmann::json cases_of(const std::string& file) {
  std::ifstream in(kFixtures + file);
  REQUIRE(bool(in));
  return nlohmann::json::parse(in);
}

/// A fixture's tokenizer (its tokenizer.json directory, or "<name>/tokenizer.model"), loaded once.
const Tokenizer& loaded(const std::string& path) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto it = cache.find(path);
  if (it == cache.end()) it = cache.emplace(path, circuitry::text::load_tokenizer(kFixtures + path)).first;
  return *it->second;
}

std::string model_bytes(const std::string& name) { return circuitry::io::read_regular_file(kFixtures + name + "/tokenizer.model"); }

/// A protobuf varint.
std::string varint(std::uint64_t v) {
  std::string out;
  for (; v >= 0x80; v >>= 7) out.push_back(char(v | 0x80));
  out.push_back(char(v));
  return out;
}

/// A length-delimited field.
std::string message_field(int number, const std::string& bytes) { return varint(std::uint64_t(number) << 3 | 2) + varint(bytes.size()) + bytes; }

/// The number of texts whose ids match, checking each.
std::size_t matches(const Tokenizer& t, const nlohmann::json& cases) {
  std::size_t same = 0;
  for (const auto& c : cases) {
    const std::string text = c["text"].get<std::string>();
    INFO("text: " << nlohmann::json(text).dump());
    const std::vector<int> got = t.encode(text);
    CHECK(got == c["ids"].get<std::vector<int>>());
    same += got == c["ids"].get<std::vector<int>>();
  }
  return same;
}

}  // namespace

TEST_SUITE("unigram") {

TEST_CASE("every fixture text: the sentencepiece library's ids from tokenizer.model, tokenizers' from tokenizer.json") {
  for (const std::string name : {"uni-fallback", "uni-classic", "bpe-model"}) {
    INFO("tokenizer.model: " << name);
    const nlohmann::json cases = cases_of(name + "/model_cases.json");
    CHECK(cases.size() >= 90);
    CHECK(matches(loaded(name + "/tokenizer.model"), cases) == cases.size());
  }
  for (const std::string name : {"uni-fallback", "uni-classic"}) {
    INFO("tokenizer.json: " << name);
    const nlohmann::json cases = cases_of(name + "/cases.json");
    CHECK(cases.size() >= 90);
    CHECK(matches(loaded(name), cases) == cases.size());
  }
}

TEST_CASE("decode gives the text back, up to the whitespace the model's normalizer changes") {
  const std::string text = "When Mary and John went to the store, 1732 caf\xC3\xA9 \xF0\x9F\xA6\x9C";
  for (const std::string path : {"uni-fallback/tokenizer.model", "uni-fallback", "bpe-model/tokenizer.model"}) {
    INFO("tokenizer: " << path);
    const Tokenizer& t = loaded(path);
    CHECK(t.decode(t.encode(text)) == " " + text);  // the dummy prefix's space stays in
    CHECK(t.decode(t.encode_continuation(text)) == text);
    CHECK(t.decode(t.encode("a   b  ")) == " a b");  // runs of spaces kept once, the ends dropped
  }
  // Byte fallback: the parrot (in no training text) is its four bytes' tokens.
  const Tokenizer& fallback = loaded("uni-fallback/tokenizer.model");
  const std::vector<int> parrot = fallback.encode_continuation("\xF0\x9F\xA6\x9C");
  REQUIRE(parrot.size() == 4);
  CHECK(fallback.token_text(parrot[0]) == "\xF0");
  // No byte fallback: a run of unknown characters is one <unk>, whose text is the piece's.
  const Tokenizer& classic = loaded("uni-classic/tokenizer.model");
  const std::vector<int> unknown = classic.encode_continuation("\xF0\x9F\xA6\x9C\xF0\x9F\xA6\x9C");
  REQUIRE(unknown.size() == 1);
  CHECK(classic.token_text(unknown[0]) == "<unk>");
}

TEST_CASE("text after other text: no dummy prefix, a leading space kept as one '\u2581'") {
  for (const std::string path : {"uni-fallback/tokenizer.model", "uni-fallback", "uni-classic", "bpe-model/tokenizer.model"}) {
    INFO("tokenizer: " << path);
    const Tokenizer& t = loaded(path);
    const std::vector<int> mary = t.encode_continuation(" Mary");
    CHECK(t.decode(mary) == " Mary");
    const std::vector<int> sentence = t.encode("When Mary");
    REQUIRE(sentence.size() >= mary.size());
    CHECK(std::vector<int>(sentence.end() - std::ptrdiff_t(mary.size()), sentence.end()) == mary);
    CHECK(t.decode(t.encode_continuation("Mary")) == "Mary");
  }
}

TEST_CASE("a directory: tokenizer.json before tokenizer.model, and tokenizer.model alone; BOS") {
  CHECK(circuitry::text::has_tokenizer(kFixtures + "bpe-model"));
  CHECK(circuitry::text::has_tokenizer(kFixtures + "bpe-model/tokenizer.model"));
  const auto dir_model = circuitry::text::load_tokenizer(kFixtures + "bpe-model");
  CHECK(dir_model->encode("a  b") == loaded("bpe-model/tokenizer.model").encode("a  b"));
  CHECK(dir_model->bos() == 1);  // trainer_spec.bos_id, as llama.cpp adds it
  CHECK(dir_model->token_text(1) == "<s>");
  // uni-classic's tokenizer.json keeps runs of spaces as '\u2581' (Replace(" {2,}", '\u2581')), its model as one each.
  const std::string spaces = "a   b";
  CHECK(loaded("uni-classic").encode(spaces) != loaded("uni-classic/tokenizer.model").encode(spaces));
  CHECK(circuitry::text::load_tokenizer(kFixtures + "uni-classic")->encode(spaces) == loaded("uni-classic").encode(spaces));
  CHECK(!loaded("uni-classic").bos());  // its tokenizer.json has no post-processor
}

TEST_CASE("tokenizer.model files that are broken or not supported: one clear error each") {
  using circuitry::text::load_sentencepiece_model;
  const std::string good = model_bytes("uni-fallback");
  CHECK(load_sentencepiece_model(good, "x.model")->vocab_size() == 435);
  for (std::size_t cut : {std::size_t(1), std::size_t(7), good.size() / 2, good.size() - 1}) {
    INFO("cut at " << cut);
    CHECK_ERROR(load_sentencepiece_model(good.substr(0, cut), "cut.model"), "cut.model", "truncated");
  }
  CHECK_ERROR(load_sentencepiece_model(varint(1 << 3 | 3) + good, "group.model"), "group.model", "wire type 3");
  CHECK_ERROR(load_sentencepiece_model(varint(2 << 3 | 0) + varint(5) + good, "spec.model"), "spec.model", "field 2 (trainer_spec)",
              "wire type 0");
  CHECK_ERROR(load_sentencepiece_model("", "empty.model"), "empty.model", "no pieces");
  CHECK_ERROR(load_sentencepiece_model(message_field(2, ""), "novocab.model"), "novocab.model", "no pieces");
  // bos_id 600 in a model of 520 pieces
  CHECK_ERROR(load_sentencepiece_model(good + message_field(2, varint(41 << 3) + varint(600)), "bos.model"), "bos.model",
              "bos_id 600", "not a piece id");
  const std::string unk = message_field(1, message_field(1, "<unk>") + varint(3 << 3) + varint(2));
  CHECK_ERROR(load_sentencepiece_model(unk + message_field(1, message_field(1, "<unk2>") + varint(3 << 3) + varint(2)), "unk.model"),
              "unk.model", "pieces[1]", "second unknown piece");
  CHECK_ERROR(load_sentencepiece_model(unk + message_field(1, message_field(1, "<unk>")), "twice.model"), "pieces[1]", "defined twice");
  CHECK_ERROR(load_sentencepiece_model(unk + message_field(1, message_field(1, "a") + varint(3 << 3) + varint(9)), "type.model"),
              "pieces[1]", "type 9");
  CHECK_ERROR(load_sentencepiece_model(unk + message_field(1, message_field(1, "<0x41>") + varint(3 << 3) + varint(6)), "byte.model"),
              "byte piece", "byte_fallback is false");
  CHECK_ERROR(load_sentencepiece_model(message_field(1, message_field(1, "a")), "nounk.model"), "no unknown piece");
  CHECK_ERROR(load_sentencepiece_model(unk + message_field(3, message_field(1, "nmt_nfkc") + message_field(2, "rules")), "nfkc.model"),
              "nfkc.model", "\"nmt_nfkc\" has a precompiled_charsmap", "does not reproduce");
  CHECK_ERROR(load_sentencepiece_model(unk + message_field(2, varint(3 << 3) + varint(3)), "word.model"), "model_type 3");
  // A model with only <unk>: every character is unknown, fused into one.
  const auto only_unk = load_sentencepiece_model(unk, "unk-only.model");
  CHECK(only_unk->encode("abc") == std::vector<int>{0});
}

TEST_CASE("Unigram tokenizer.json files that are broken or not supported: one clear error each") {
  using circuitry::text::load_tokenizer_json;
  std::ifstream in(kFixtures + "uni-classic/tokenizer.json");
  const nlohmann::json classic = nlohmann::json::parse(in);
  nlohmann::json j = classic;
  j["normalizer"]["normalizers"][0] = {{"type", "Precompiled"}, {"precompiled_charsmap", "AAAA"}};
  CHECK_ERROR(load_tokenizer_json(j.dump(), "t.json"), "t.json", "Precompiled has a precompiled_charsmap", "does not reproduce");
  j["normalizer"]["normalizers"][0] = {{"type", "Precompiled"}, {"precompiled_charsmap", ""}};  // empty: a no-op
  CHECK(load_tokenizer_json(j.dump(), "t.json")->encode("When Mary") == loaded("uni-classic").encode("When Mary"));
  j["normalizer"] = {{"type", "NFKC"}};
  CHECK_ERROR(load_tokenizer_json(j.dump(), "t.json"), "the normalizer NFKC is not supported");
  j = classic;
  j["normalizer"]["normalizers"][1]["pattern"]["Regex"] = "\\s+";
  CHECK_ERROR(load_tokenizer_json(j.dump(), "t.json"), "a regex circuitry does not know");
  j = classic;
  j["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  CHECK_ERROR(load_tokenizer_json(j.dump(), "t.json"), "pre_tokenizer BertPreTokenizer is not supported");
  j = classic;
  j["model"]["unk_id"] = 5000;
  CHECK_ERROR(load_tokenizer_json(j.dump(), "t.json"), "model.unk_id is 5000");
  j = classic;
  j["model"]["vocab"][7] = {"x", "not a number"};
  CHECK_ERROR(load_tokenizer_json(j.dump(), "t.json"), "model.vocab[7] is not [piece, finite score]");
  j = classic;
  j["model"]["vocab"] = nlohmann::json::array();
  CHECK_ERROR(load_tokenizer_json(j.dump(), "t.json"), "model.vocab is not a non-empty list");
  j = classic;
  j["model"]["unk_id"] = nullptr;
  CHECK_ERROR(load_tokenizer_json(j.dump(), "t.json")->encode("\xF0\x9F\xA6\x9C"), "no unknown token");
}

TEST_CASE("the fuzz harness reads every fixture model and refuses garbage with an Error") {
  for (const std::string name : {"uni-fallback", "uni-classic", "bpe-model"}) {
    const std::string bytes = model_bytes(name);
    CHECK_NOTHROW(circuitry::fuzz::sentencepiece_model(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
  }
  const std::string garbage = "\xFF\xFF\xFF";
  CHECK_NOTHROW(circuitry::fuzz::run_one(circuitry::fuzz::sentencepiece_model, reinterpret_cast<const std::uint8_t*>(garbage.data()), 3));
}

}  // TEST_SUITE("unigram")
