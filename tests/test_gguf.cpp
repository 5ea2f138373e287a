// GGUF (llama.cpp's model files): the header reader's checks, metadata values, dequantization of
// every tensor type against gguf-py's own numpy dequantize(), models against transformers'
// loading of the same files, and the tokenizer in the metadata against transformers' (fixtures
// by tests/make_gguf_fixtures.py). Malformed files are built byte by byte below.
#include <doctest/doctest.h>

#include "error_check.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuitry/io/gguf_file.hpp"
#include "circuitry/io/gguf_model.hpp"
#include "circuitry/io/model_directory.hpp"
#include "circuitry/models/model.hpp"
#include "circuitry/text/bpe_tokenizer.hpp"
#include "circuitry/text/gguf_tokenizer.hpp"
#include "circuitry/text/task.hpp"

#include "temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace circuitry;

const std::string kFixtures = CIRCUITRY_FIXTURES_DIR;

/// A GGUF file, byte by byte: every field can be set to something wrong.
struct GgufBytes {
  std::string magic = "GGUF";
  std::uint32_t version = 3;
  std::vector<std::string> values;  // each: key, type and value, encoded
  struct Tensor {
    std::string name;
    std::vector<std::uint64_t> ne;
    std::uint32_t type = 0;
    std::uint64_t offset = 0;
  };
  std::vector<Tensor> tensors;
  std::uint64_t data_bytes = 256;
  std::uint64_t alignment = 32;
  std::optional<std::uint64_t> tensor_count, value_count;  // what the header claims, if not the truth

  template <class U>
  static void put(std::string& s, U v) {
    s.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  static void put_string(std::string& s, const std::string& text) {
    put<std::uint64_t>(s, text.size());
    s += text;
  }
  template <class U>
  void add(const std::string& key, std::uint32_t type, U value) {
    std::string s;
    put_string(s, key);
    put(s, type);
    put(s, value);
    values.push_back(s);
  }
  void add_string(const std::string& key, const std::string& value) {
    std::string s;
    put_string(s, key);
    put<std::uint32_t>(s, 8);
    put_string(s, value);
    values.push_back(s);
  }
  void add_strings(const std::string& key, const std::vector<std::string>& list) {
    std::string s;
    put_string(s, key);
    put<std::uint32_t>(s, 9);
    put<std::uint32_t>(s, 8);
    put<std::uint64_t>(s, list.size());
    for (const auto& item : list) put_string(s, item);
    values.push_back(s);
  }

  std::string bytes() const {
    std::string s = magic;
    put(s, version);
    put<std::uint64_t>(s, tensor_count.value_or(tensors.size()));
    put<std::uint64_t>(s, value_count.value_or(values.size()));
    for (const auto& v : values) s += v;
    for (const auto& t : tensors) {
      put_string(s, t.name);
      put<std::uint32_t>(s, std::uint32_t(t.ne.size()));
      for (auto e : t.ne) put(s, e);
      put(s, t.type);
      put(s, t.offset);
    }
    s.append((alignment - s.size() % alignment) % alignment, '\0');
    s.append(data_bytes, '\0');
    return s;
  }
};

/// One F32 tensor [2, 32] at offset 0 and one metadata value.
GgufBytes valid_file() {
  GgufBytes g;
  g.add_string("general.architecture", "test");
  g.tensors.push_back({"w", {32, 2}, 0, 0});
  return g;
}

fs::path write(const testing::TempDir& dir, const std::string& name, const std::string& bytes) {
  const fs::path path = dir / name;
  testing::write_file(path, bytes);
  return path;
}

}  // namespace

TEST_CASE("GGUF: a valid file's header, shapes row-major, and its data") {
  const testing::TempDir dir;
  GgufBytes g = valid_file();
  g.tensors.push_back({"v", {8}, 0, 256});
  g.data_bytes = 288;
  const auto file = io::GgufFile::open(write(dir, "ok.gguf", g.bytes()));
  CHECK(file.version() == 3);
  CHECK(file.names() == std::vector<std::string>{"w", "v"});
  CHECK(file.info("w").shape == std::vector<std::size_t>{2, 32});
  CHECK(file.info("v").shape == std::vector<std::size_t>{8});
  CHECK(file.read<float>("w") == std::vector<float>(64, 0.0f));
  CHECK(file.string_value("general.architecture") == "test");
  g.version = 2;
  CHECK(io::GgufFile::open(write(dir, "v2.gguf", g.bytes())).version() == 2);
}

TEST_CASE("GGUF: every malformed header is one error naming the fault") {
  const testing::TempDir dir;
  auto open = [&](const GgufBytes& g) { return io::GgufFile::open(write(dir, "bad.gguf", g.bytes())); };
  const std::string path = (dir / "bad.gguf").string();
  GgufBytes g = valid_file();
  g.magic = "GGUG";
  CHECK_ERROR(open(g), path, "not a GGUF file");
  g = valid_file();
  g.version = 1;
  CHECK_ERROR(open(g), "GGUF version 1 is not supported");
  g.version = 4;
  CHECK_ERROR(open(g), "GGUF version 4 is not supported");
  CHECK_ERROR(io::GgufFile::open(write(dir, "short.gguf", "GGUF\3\0")), "truncated header", "the version");
  const std::string whole = valid_file().bytes();
  for (std::size_t cut : {std::size_t(20), std::size_t(30), std::size_t(60), std::size_t(90)})
    CHECK_ERROR(io::GgufFile::open(write(dir, "cut.gguf", whole.substr(0, cut))), "truncated");
  g = valid_file();
  g.tensor_count = std::uint64_t(1) << 60;
  CHECK_ERROR(open(g), "truncated header", "claims 1152921504606846976 tensors");
  g = valid_file();
  g.value_count = ~std::uint64_t(0);
  CHECK_ERROR(open(g), "truncated header", "metadata values");
  g = valid_file();
  g.values.push_back(std::string("\xff\xff\xff\xff\xff\xff\xff\x0f", 8));  // a key of 2^60 bytes
  CHECK_ERROR(open(g), "truncated header", "the key of metadata value 1");
  g = valid_file();
  {
    std::string s;
    GgufBytes::put_string(s, "big");
    GgufBytes::put<std::uint32_t>(s, 9);
    GgufBytes::put<std::uint32_t>(s, 4);
    GgufBytes::put<std::uint64_t>(s, std::uint64_t(1) << 40);
    g.values.push_back(s);
  }
  CHECK_ERROR(open(g), "array 'big' claims 1099511627776 elements");
  g = valid_file();
  g.add<std::uint32_t>("odd", 13, 0);
  CHECK_ERROR(open(g), "the value type of 'odd' is 13");
  g = valid_file();
  {
    std::string s;
    GgufBytes::put_string(s, "nested");
    GgufBytes::put<std::uint32_t>(s, 9);
    GgufBytes::put<std::uint32_t>(s, 9);
    GgufBytes::put<std::uint64_t>(s, 0);
    g.values.push_back(s);
  }
  CHECK_ERROR(open(g), "'nested' is an array of arrays");
  g = valid_file();
  g.add_string("general.architecture", "again");
  CHECK_ERROR(open(g), "the metadata key 'general.architecture' appears twice");
  g = valid_file();
  g.add<std::uint32_t>("general.alignment", 4, 24);
  CHECK_ERROR(open(g), "general.alignment must be an integer power of two");
  g = valid_file();
  g.tensors.push_back({"w", {32}, 0, 0});
  CHECK_ERROR(open(g), "two tensors are named 'w'");
  g = valid_file();
  g.tensors[0].ne = {32, 1, 1, 1, 2};
  CHECK_ERROR(open(g), "tensor 'w' has 5 dimensions", "at most 4");
  g = valid_file();
  g.tensors[0].ne = {std::uint64_t(1) << 40, std::uint64_t(1) << 40};
  CHECK_ERROR(open(g), "tensor 'w' has dimensions whose product overflows");
  g = valid_file();
  g.tensors[0].type = 99;
  CHECK_ERROR(open(g), "tensor 'w' has the unknown tensor type 99");
  g.tensors[0].type = 23;
  CHECK_ERROR(open(g), "tensor type IQ4_XS (23)", "circuitry reads F32");
  g = valid_file();
  g.tensors[0].type = 8;  // Q8_0
  g.tensors[0].ne = {48, 2};
  CHECK_ERROR(open(g), "tensor 'w' has rows of 48 values, not a whole number of Q8_0 blocks of 32");
  g = valid_file();
  g.tensors[0].offset = 4;
  CHECK_ERROR(open(g), "tensor 'w' starts at data offset 4", "not a multiple of the alignment 32");
  g = valid_file();
  g.tensors[0].offset = 224;
  CHECK_ERROR(open(g), "tensor 'w' (256 bytes at data offset 224) lies outside the file");
  g = valid_file();
  g.data_bytes = 100;  // the data section cut short
  CHECK_ERROR(open(g), "tensor 'w' (256 bytes at data offset 0) lies outside the file", "truncated");
  g = valid_file();
  g.tensors.push_back({"x", {32}, 0, 128});
  CHECK_ERROR(open(g), "the data of tensors 'w' and 'x' overlap");
  CHECK_ERROR(io::GgufFile::open(dir / "absent.gguf"), "not a regular file");
}

TEST_CASE("GGUF: metadata of every value type") {
  const auto file = io::GgufFile::open(kFixtures + "/gguf-quants/quants.gguf");
  CHECK(file.number_value("test.u8") == 200);
  CHECK(file.number_value("test.i8") == -100);
  CHECK(file.number_value("test.u16") == 60000);
  CHECK(file.number_value("test.i16") == -30000);
  CHECK(file.number_value("test.u32") == 4000000000.0);
  CHECK(file.number_value("test.i32") == -2000000000.0);
  CHECK(file.number_value("test.f32") == 0.25);
  CHECK(file.find("test.bool")->number == 1);
  CHECK(file.string_value("test.string") == "h\xc3\xa9llo");
  CHECK(file.number_value("test.u64") == double(std::uint64_t(1) << 40));
  CHECK(file.number_value("test.i64") == -double(std::uint64_t(1) << 40));
  CHECK(file.number_value("test.f64") == 1e-300);
  CHECK(file.string_array("test.strings") == std::vector<std::string>{"a", "", "ccc"});
  CHECK(file.number_array("test.numbers") == std::vector<double>{1, 2, 3});
  CHECK(file.size_value("test.u8") == 200);
  CHECK(file.alignment() == 32);
  CHECK_ERROR(file.size_value("test.i8"), "metadata 'test.i8' is -100");
  CHECK_ERROR(file.size_value("test.f32"), "metadata 'test.f32' is f32, expected an integer");
  CHECK_ERROR(file.string_value("test.u8"), "metadata 'test.u8' is u8, expected a string");
  CHECK_ERROR(file.string_array("test.numbers"), "is an array of", "expected an array of strings");
  CHECK_ERROR(file.number_value("absent"), "quants.gguf", "missing metadata 'absent'");
}

TEST_CASE("GGUF: every tensor type dequantizes as gguf-py's dequantize() does") {
  const auto file = io::GgufFile::open(kFixtures + "/gguf-quants/quants.gguf");
  for (const io::GgmlTypeSpec& spec : io::ggml_type_specs)
    for (const char* suffix : {"", ".quantized"}) {
      const std::string name = std::string(spec.name) + suffix;
      if (!file.contains(name)) continue;  // gguf-py quantizes no K-quant
      CAPTURE(name);
      CHECK(file.info(name).type == spec.type);
      const std::vector<float> ours = file.read<float>(name), theirs = file.read<float>(name + ".expected");
      REQUIRE(ours.size() == theirs.size());
      double worst = 0, largest = 0;
      for (std::size_t i = 0; i < ours.size(); ++i) {
        worst = std::max(worst, std::abs(double(ours[i]) - double(theirs[i])));
        largest = std::max(largest, std::abs(double(theirs[i])));
      }
      MESSAGE(name << ": max |ours - gguf-py| = " << worst << " (values up to " << largest << ")");
      CHECK(largest > 0);
      CHECK(worst <= 1e-6 * largest);
      const std::vector<double> as_double = file.read<double>(name);
      CHECK(std::equal(as_double.begin(), as_double.end(), ours.begin()));
    }
}

namespace {

/// circuitry's logits on a fixture's GGUF model against transformers' (hf-logits.json); the
/// largest difference.
double worst_logit_difference(const std::string& name) {
  const std::string dir = kFixtures + "/" + name;
  const auto checkpoint = io::load_model_directory<float>(dir + "/model.gguf");
  const Task task = read_task(dir + "/task.jsonl", checkpoint.config.vocab_size, checkpoint.config.n_positions);
  const nlohmann::json hf = nlohmann::json::parse(std::ifstream(dir + "/hf-logits.json"));
  double worst = 0;
  with_architecture(checkpoint.config, [&]<class Arch>() {
    const Model<Arch, float> model(checkpoint.config, checkpoint.weights);
    for (bool clean : {true, false}) {
      const std::string key = clean ? "logits" : "corrupted_logits";
      for (std::size_t b = 0; b < task.examples.size(); ++b) {
        const auto& ids = clean ? task.examples[b].clean : task.examples[b].corrupted;
        Arena arena;
        Context<float, false> ctx(arena);
        ForwardOptions<float> o;
        o.all_positions = true;
        const Var<float> y = model.forward(ctx, Batch::from({ids}), o);
        const std::size_t V = y.shape[1];
        REQUIRE(V == hf[key][b].size());
        for (std::size_t v = 0; v < V; ++v)
          worst = std::max(worst, std::abs(double(y.value[(ids.size() - 1) * V + v]) - hf[key][b][v].get<double>()));
        if (b < hf["all_" + key].size())
          for (std::size_t p = 0; p < ids.size(); ++p)
            for (std::size_t v = 0; v < V; ++v)
              worst = std::max(worst, std::abs(double(y.value[p * V + v]) - hf["all_" + key][b][p][v].get<double>()));
      }
    }
  });
  return worst;
}

}  // namespace

TEST_CASE("GGUF models (Llama with GQA and permuted q/k, Qwen2, GPT-2, Gemma 2, Gemma 3; mixed tensor types): logits match transformers") {
  for (const char* name : {"gguf-llama", "gguf-qwen2", "gguf-gpt2", "gguf-gemma2", "gguf-gemma3"}) {
    CAPTURE(name);
    const double worst = worst_logit_difference(name);
    MESSAGE(std::string(name) << ": max |circuitry - transformers| logit difference " << worst);
    CHECK(worst < 1e-4);
  }
  const auto llama = io::load_model_directory<float>(kFixtures + "/gguf-llama/model.gguf");
  CHECK(llama.config.n_kv_head == 2);
  CHECK(!llama.config.tie_word_embeddings);
  CHECK(io::load_model_directory<float>(kFixtures + "/gguf-qwen2/model.gguf").config.tie_word_embeddings);
  const auto gpt2 = io::load_model_directory<double>(kFixtures + "/gguf-gpt2/model.gguf");
  CHECK(gpt2.config.n_positions == 1024);
  CHECK(gpt2.config.n_inner == 256);
  // Gemma's settings as llama.cpp reads them (the fixtures' values are where transformers agrees).
  const auto gemma2 = io::load_model_directory<float>(kFixtures + "/gguf-gemma2/model.gguf").config;
  CHECK(gemma2.attn_softcap == 50.0);
  CHECK(gemma2.final_softcap == 30.0);
  CHECK(gemma2.sliding_window == 3);
  CHECK(gemma2.sliding_layers == std::vector<bool>{true, false});
  CHECK(gemma2.attn_scale == doctest::Approx(1.0 / 16));
  CHECK(gemma2.post_attention_norm);
  const auto gemma3 = io::load_model_directory<float>(kFixtures + "/gguf-gemma3/model.gguf").config;
  CHECK(gemma3.qk_norm);
  CHECK(gemma3.attn_softcap == 0.0);
  CHECK(gemma3.sliding_layers == std::vector<bool>{true, true, true, true, true, false});
  CHECK(gemma3.rotary_base == 20000.0);
  CHECK(gemma3.rotary_base_local == 10000.0);
}

// hf-llama-rope-linear and hf-llama-rope-llama3 written as llama.cpp's converter writes them
// (tests/make_gguf_rope_fixtures.py): linear scaling in the metadata, llama3's as rope_freqs.
TEST_CASE_TEMPLATE("GGUF rope scaling (linear, llama3's rope_freqs): logits match transformers' run of the same model", T, float,
                   double) {
  for (const char* name : {"linear", "llama3"}) {
    CAPTURE(name);
    const std::string hf_dir = kFixtures + "/hf-llama-rope-" + name;
    const auto checkpoint = io::load_model_directory<T>(kFixtures + "/gguf-rope/" + name + ".gguf");
    CHECK(checkpoint.config.rope_scaling.type == (std::string(name) == "linear" ? "linear" : "default"));
    CHECK(checkpoint.config.rope_scaling.pair_divisors.size() == (std::string(name) == "linear" ? 0 : 8));
    const Task task = read_task(hf_dir + "/task.jsonl", checkpoint.config.vocab_size, checkpoint.config.n_positions);
    const nlohmann::json hf =
        nlohmann::json::parse(std::ifstream(hf_dir + "/hf-logits.json"))[std::is_same_v<T, float> ? "float32" : "float64_strict"];
    double worst = 0;
    with_architecture(checkpoint.config, [&]<class Arch>() {
      const Model<Arch, T> model(checkpoint.config, checkpoint.weights);
      for (bool clean : {true, false})
        for (std::size_t b = 0; b < task.examples.size(); ++b) {
          const auto& ids = clean ? task.examples[b].clean : task.examples[b].corrupted;
          Arena arena;
          Context<T, false> ctx(arena);
          ForwardOptions<T> o;
          o.all_positions = true;
          const Var<T> y = model.forward(ctx, Batch::from({ids}), o);
          const auto& theirs = hf[clean ? "all_logits" : "all_corrupted_logits"][b];
          for (std::size_t p = 0; p < ids.size(); ++p)
            for (std::size_t v = 0; v < y.shape[1]; ++v)
              worst = std::max(worst, std::abs(double(y.value[p * y.shape[1] + v]) - theirs[p][v].template get<double>()));
        }
    });
    MESSAGE(std::string(name) << ": max |circuitry - transformers| logit difference " << worst);
    // The rope_freqs divisors are float32 (llama.cpp's), so double agrees to float32 rounding only.
    CHECK(worst < (std::is_same_v<T, float> ? 1e-4 : 1e-6));
  }
  const testing::TempDir dir;
  GgufBytes g;
  g.add_string("llama.rope.scaling.type", "yarn");
  CHECK_ERROR(io::read_gguf_rope_scaling(io::GgufFile::open(write(dir, "m.gguf", g.bytes())), "llama.", 8), "m.gguf",
              "llama.rope.scaling.type", "\"yarn\"");
}

TEST_CASE("GGUF: the tokenizer in the metadata encodes as transformers' tokenizer of the same file") {
  for (const char* name : {"gguf-llama", "gguf-qwen2", "gguf-gpt2"}) {
    CAPTURE(name);
    const std::string dir = kFixtures + "/" + name;
    const auto file = io::GgufFile::open(dir + "/model.gguf");
    const text::GgufTokenizer read = text::read_gguf_tokenizer(file);
    CHECK(read.bos_id == 271);
    const text::ByteLevelBpeTokenizer tokenizer(read.bpe);
    const nlohmann::json hf = nlohmann::json::parse(std::ifstream(dir + "/hf-logits.json"));
    for (const auto& t : hf["texts"]) {
      CAPTURE(t["text"].get<std::string>());
      CHECK(tokenizer.encode(t["text"].get<std::string>()) == t["ids"].get<std::vector<int>>());
    }
    CHECK(tokenizer.encode("<|endoftext|>") == std::vector<int>{271});
  }
}

TEST_CASE("GGUF: tokenizer.ggml.pre smollm and starcoder split digits one by one, as the tokenizer.json of that style") {
  // The tiny SmolLM2-style tokenizer.json (Digits then ByteLevel, 21 byte tokens missing) as GGUF
  // metadata, the way llama.cpp's converter writes it: tokens by id, control tokens typed 3.
  const nlohmann::json j = nlohmann::json::parse(std::ifstream(kFixtures + "/tokenizer/smollm2/tokenizer.json"));
  std::vector<std::string> tokens(j["model"]["vocab"].size());
  for (const auto& [token, id] : j["model"]["vocab"].items()) tokens.at(id.get<std::size_t>()) = token;
  std::vector<std::string> merges;
  for (const auto& m : j["model"]["merges"]) merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
  std::string token_types;  // an array (9) of INT32 (5)
  GgufBytes::put<std::uint32_t>(token_types, 5);
  GgufBytes::put<std::uint64_t>(token_types, tokens.size());
  for (std::size_t id = 0; id < tokens.size(); ++id) {
    bool control = false;
    for (const auto& t : j["added_tokens"]) control = control || t["id"] == id;
    GgufBytes::put<std::int32_t>(token_types, control ? 3 : 1);
  }
  const nlohmann::json cases = nlohmann::json::parse(std::ifstream(kFixtures + "/tokenizer/smollm2/cases.json"));
  const testing::TempDir dir;
  for (const char* pre : {"smollm", "starcoder"}) {
    CAPTURE(pre);
    GgufBytes g;
    g.add_string("tokenizer.ggml.model", "gpt2");
    g.add_string("tokenizer.ggml.pre", pre);
    g.add_strings("tokenizer.ggml.tokens", tokens);
    g.add_strings("tokenizer.ggml.merges", merges);
    std::string types;
    GgufBytes::put_string(types, "tokenizer.ggml.token_type");
    GgufBytes::put<std::uint32_t>(types, 9);
    g.values.push_back(types + token_types);
    const text::ByteLevelBpeTokenizer tokenizer(text::read_gguf_tokenizer(io::GgufFile::open(write(dir, "smol.gguf", g.bytes()))).bpe);
    std::size_t mismatches = 0;
    for (const auto& c : cases)
      if (!c.contains("missing_byte")) mismatches += tokenizer.encode(c["text"].get<std::string>()) != c["ids"].get<std::vector<int>>();
    CHECK(mismatches == 0);
    CHECK_ERROR(tokenizer.encode("a\x04" "b"), "smol.gguf: tokenizer.ggml.tokens", "needs byte 0x04");
  }
}

TEST_CASE("GGUF: architectures, settings and tokenizers circuitry cannot run are refused by name") {
  const testing::TempDir dir;
  auto config_of = [&](const GgufBytes& g) { return io::read_gguf_config(io::GgufFile::open(write(dir, "m.gguf", g.bytes()))); };
  auto tokenizer_of = [&](const GgufBytes& g) { return text::read_gguf_tokenizer(io::GgufFile::open(write(dir, "t.gguf", g.bytes()))); };
  GgufBytes g;
  g.add_string("general.architecture", "gemma");
  CHECK_ERROR(config_of(g), "m.gguf", "\"gemma\"", "Gemma 2 and 3");
  g = GgufBytes();
  g.add_string("general.architecture", "mamba");
  CHECK_ERROR(config_of(g), "\"mamba\"", "llama, qwen2, qwen3, gemma2, gemma3 and gpt2");
  g = GgufBytes();
  g.add_string("general.architecture", "llama");
  g.add<std::uint32_t>("llama.block_count", 4, 1);
  CHECK_ERROR(config_of(g), "missing metadata 'llama.embedding_length'");
  g = GgufBytes();
  g.add_string("tokenizer.ggml.model", "llama");
  CHECK_ERROR(tokenizer_of(g), "t.gguf", "tokenizer.ggml.tokens");  // SentencePiece: test_sentencepiece.cpp
  g = GgufBytes();
  g.add_string("tokenizer.ggml.model", "gpt2");
  g.add_string("tokenizer.ggml.pre", "deepseek-llm");
  g.add_strings("tokenizer.ggml.tokens", {"a"});
  CHECK_ERROR(tokenizer_of(g), "tokenizer.ggml.pre is \"deepseek-llm\"");
  CHECK_ERROR(tokenizer_of(GgufBytes()), "no tokenizer in the file");
  // A block_count larger than the file's layers.
  const testing::TempDir copy;
  CHECK(io::is_gguf_file(kFixtures + "/gguf-gpt2/model.gguf"));
  fs::copy_file(kFixtures + "/gguf-gpt2/model.gguf", copy / "model.bin");
  CHECK(io::is_gguf_file(copy / "model.bin"));  // by its magic
  CHECK(io::load_model_directory<float>(copy / "model.bin").config.n_layer == 2);
}
