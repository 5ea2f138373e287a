// io: safetensors, tensor stores (one file or shards), checkpoints, task files and numbers as JSON text. Malformed
// inputs are written to a temporary directory and each must fail with a circuitry::Error that
// names the file and the fault.
#include <doctest/doctest.h>

#include "error_check.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <random>
#include <set>
#include <sstream>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuitry/io/atomic_file.hpp"
#include "circuitry/io/checkpoint.hpp"
#include "circuitry/io/model_directory.hpp"
#include "circuitry/io/npy.hpp"
#include "circuitry/io/number_text.hpp"
#include "circuitry/models/model.hpp"
#include "circuitry/io/safetensors.hpp"
#include "circuitry/io/tensor_store.hpp"
#include "circuitry/text/task.hpp"

#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace std::string_literals;
using circuitry::Error;
using circuitry::ModelConfig;
using circuitry::Weights;

namespace {

using circuitry::testing::TempDir;
using circuitry::testing::write_file;

std::string le64(std::uint64_t value) {
  std::string bytes(8, '\0');
  for (std::size_t i = 0; i < 8; ++i) bytes[i] = static_cast<char>((value >> (8 * i)) & 0xFF);
  return bytes;
}

/// A safetensors file: the header's length, the header, then `data` as the data section.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

std::string u16_bytes(std::initializer_list<std::uint16_t> values) {
  std::string bytes;
  for (std::uint16_t v : values) bytes += {static_cast<char>(v & 0xFF), static_cast<char>(v >> 8)};
  return bytes;
}


}  // namespace


using circuitry::io::SafetensorsFile;

TEST_CASE("safetensors: structural faults are rejected before any tensor is read") {
  TempDir dir;
  const fs::path file = dir / "model.safetensors";
  const std::string where = file.string();
  auto open_bytes = [&](const std::string& bytes) {
    write_file(file, bytes);
    return SafetensorsFile::open(file);
  };

  CHECK_ERROR(SafetensorsFile::open(dir / "absent.safetensors"), "absent.safetensors", "does not exist");
  CHECK_ERROR(open_bytes("\x05\0\0"s), where, "3 bytes", "too short");
  CHECK_ERROR(open_bytes(le64(4096) + "{}"), where, "header length 4096 exceeds the file size 10", "truncated");
  CHECK_ERROR(open_bytes(le64(100'000'001) + "{}"), where, "header length 100000001", "limit of 100000000");
  CHECK_ERROR(open_bytes(le64(std::numeric_limits<std::uint64_t>::max()) + "{}"), "exceeds the limit");
  CHECK_ERROR(open_bytes(safetensors_bytes(R"({"x": )", "")), where, "not valid JSON");
  CHECK_ERROR(open_bytes(safetensors_bytes("{}\0junk"s, "")), "not valid JSON", "NUL");
  CHECK_ERROR(open_bytes(safetensors_bytes(" {}", "")), where, "must start with '{'");
  CHECK_ERROR(open_bytes(safetensors_bytes("[]", "")), "must start with '{'");
  CHECK_ERROR(open_bytes(safetensors_bytes("{\"\xC3\x28\":1}", "")), where, "not valid UTF-8");
  CHECK_ERROR(open_bytes(safetensors_bytes("{\"\xED\xA0\x80\":1}", "")), "not valid UTF-8");  // a surrogate
}

TEST_CASE("safetensors: header entries are validated like the reference implementation") {
  TempDir dir;
  const fs::path file = dir / "model.safetensors";
  const std::string where = file.string();
  auto open_header = [&](const std::string& header, std::size_t data_bytes) {
    write_file(file, safetensors_bytes(header, std::string(data_bytes, '\0')));
    return SafetensorsFile::open(file);
  };

  CHECK_ERROR(open_header(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                          8),
              where, "duplicate key \"x\"");
  CHECK_ERROR(open_header(R"({"x":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})", 4),
              "duplicate key \"dtype\"");
  CHECK_ERROR(open_header(R"({"__metadata__":{"format":1}})", 0), where, "__metadata__", "strings to strings");
  CHECK_ERROR(open_header(R"({"__metadata__":["pt"]})", 0), "__metadata__", "strings to strings");
  CHECK_ERROR(open_header(R"({"x":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}})", 4), where, "tensor 'x'",
              "unknown dtype \"F17\"");
  CHECK_ERROR(open_header(R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "non-negative");
  CHECK_ERROR(open_header(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4), "[begin, end]");
  CHECK_ERROR(open_header(R"({"x":{"dtype":"F32","shape":[1]}})", 4), "data_offsets");
  CHECK_ERROR(open_header(R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", 4), where, "tensor 'x'",
              "begin 4 > end 0");
  CHECK_ERROR(open_header(R"({"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 20), where,
              "spanning 20 bytes", "shape [2, 3] of F32 needs 24 bytes");
  CHECK_ERROR(open_header(R"({"x":{"dtype":"F64","shape":[4611686018427387904,8],"data_offsets":[0,8]}})", 8),
              "overflows");
  // The element count is formed first, as in the reference: a huge extent times 0 is an empty tensor.
  CHECK_NOTHROW(open_header(R"({"x":{"dtype":"F32","shape":[4611686018427387904,0],"data_offsets":[0,0]}})", 0));
  CHECK_ERROR(open_header(R"({"x":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}})", 1), "whole number of bytes");
  CHECK_ERROR(open_header(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8), where, "tensor 'x'",
              "past the end of the data section");
  CHECK_ERROR(open_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                          12),
              where, "overlap", "'a'", "'b'");
  CHECK_ERROR(open_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                          12),
              where, "gap", "[4, 8)");
  CHECK_ERROR(open_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8), "gap", "[0, 4)");
  CHECK_ERROR(open_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 6), "6 bytes", "cover only 4");
}

TEST_CASE("safetensors: F16, BF16, F64 and F32 values convert exactly") {
  TempDir dir;
  const fs::path file = dir / "values.safetensors";
  const float min_subnormal = std::ldexp(1.0f, -24);
  const std::string header = R"({"__metadata__":{"format":"pt"},)"
                             R"("half":{"dtype":"F16","shape":[2,5],"data_offsets":[0,20]},)"
                             R"("brain":{"dtype":"BF16","shape":[3],"data_offsets":[20,26]},)"
                             R"("empty":{"dtype":"F32","shape":[0,3],"data_offsets":[26,26]},)"
                             R"("ids":{"dtype":"I64","shape":[1],"data_offsets":[26,34]},)"
                             R"("wide":{"dtype":"F64","shape":[1],"data_offsets":[34,42]}})";
  const double third = 1.0 / 3.0;
  std::string wide(8, '\0');
  std::memcpy(wide.data(), &third, 8);
  write_file(file, safetensors_bytes(header, u16_bytes({0x3C00, 0xC000, 0x0001, 0x03FF, 0x8000,  // F16
                                                        0x7BFF, 0x7C00, 0xFC00, 0x7E00, 0x3555}) +
                                                 u16_bytes({0x3F80, 0xC040, 0x7F80}) +  // BF16
                                                 std::string(8, '\0') + wide));
  const SafetensorsFile st = SafetensorsFile::open(file);
  CHECK(st.names() == std::vector<std::string>{"half", "brain", "empty", "ids", "wide"});
  CHECK(st.metadata().at("format") == "pt");
  CHECK(st.info("half").dtype == circuitry::io::DType::F16);
  CHECK(st.info("half").shape == std::vector<std::size_t>{2, 5});
  CHECK_FALSE(st.contains("missing"));

  const std::vector<float> half = st.read<float>("half");
  CHECK(half[0] == 1.0f);
  CHECK(half[1] == -2.0f);
  CHECK(half[2] == min_subnormal);
  CHECK(half[3] == 1023 * min_subnormal);  // largest subnormal
  CHECK(half[4] == 0.0f);
  CHECK(std::signbit(half[4]));
  CHECK(half[5] == 65504.0f);  // largest finite half
  CHECK(half[6] == std::numeric_limits<float>::infinity());
  CHECK(half[7] == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(half[8]));
  CHECK(half[9] == std::ldexp(1365.0f, -12));  // 0x3555 = 0.333251953125
  CHECK(st.read<double>("half")[2] == std::ldexp(1.0, -24));

  CHECK(st.read<float>("brain") == std::vector<float>{1.0f, -3.0f, std::numeric_limits<float>::infinity()});
  CHECK(st.read<double>("empty").empty());
  CHECK(st.read<double>("wide")[0] == third);
  CHECK(st.read<float>("wide")[0] == static_cast<float>(third));
  CHECK_ERROR(st.read<float>("ids"), file.string(), "tensor 'ids'", "dtype I64", "cannot be read as floating point");
  CHECK_ERROR(st.read<float>("nope"), "no tensor named 'nope'");
}

TEST_CASE("safetensors: write_safetensors round trips F32 and pads the header to 8 bytes") {
  TempDir dir;
  const fs::path file = dir / "out.safetensors";
  const std::vector<circuitry::io::NamedTensor> tensors = {
      {"matrix", {2, 3}, {1.5f, -2.25f, 3e-39f, 1e30f, 0.0f, -7.0f}},
      {"scalar", {}, {42.0f}},
      {"nothing", {0}, {}},
  };
  circuitry::io::write_safetensors(file, tensors, {{"format", "pt"}});
  std::ifstream in(file, std::ios::binary);
  std::string length_bytes(8, '\0');
  in.read(length_bytes.data(), 8);
  CHECK(static_cast<unsigned char>(length_bytes[0]) % 8 == 0);

  const SafetensorsFile st = SafetensorsFile::open(file);
  CHECK(st.names() == std::vector<std::string>{"matrix", "scalar", "nothing"});  // by offset
  for (const auto& tensor : tensors) {
    CHECK(st.info(tensor.name).dtype == circuitry::io::DType::F32);
    CHECK(st.info(tensor.name).shape == tensor.shape);
    CHECK(st.read<float>(tensor.name) == tensor.values);
  }
  CHECK_ERROR(circuitry::io::write_safetensors(dir / "bad.safetensors", {{"x", {2, 2}, {1.0f}}}), "shape [2, 2]",
              "1 values");
  CHECK_ERROR(circuitry::io::write_safetensors(dir / "bad.safetensors", {{"x", {1}, {1.0f}}, {"x", {1}, {2.0f}}}),
              "two tensors are named 'x'");
}

namespace {

ModelConfig tiny_config(bool attn_only, bool tied) {
  ModelConfig config;
  config.n_layer = 2;
  config.n_head = 2;
  config.n_embd = 4;
  config.n_positions = 8;
  config.vocab_size = 11;
  config.n_inner = attn_only ? 16 : 12;
  config.layer_norm_epsilon = 1e-6;
  config.attn_only = attn_only;
  config.tie_word_embeddings = tied;
  return config;
}

/// Random weights of the shapes `config` implies, written out by hand so that the name and
/// shape table in checkpoint.hpp is checked against an independent copy.
std::vector<circuitry::io::NamedTensor> hf_tensors(const ModelConfig& c, const std::string& prefix, unsigned seed) {
  std::mt19937 random(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<circuitry::io::NamedTensor> tensors;
  auto add = [&](const std::string& name, std::vector<std::size_t> shape) {
    std::size_t count = 1;
    for (std::size_t extent : shape) count *= extent;
    std::vector<float> values(count);
    for (float& v : values) v = uniform(random);
    tensors.push_back({name, std::move(shape), std::move(values)});
  };
  const std::size_t d = c.n_embd, f = c.n_inner;
  add(prefix + "wte.weight", {c.vocab_size, d});
  add(prefix + "wpe.weight", {c.n_positions, d});
  for (std::size_t l = 0; l < c.n_layer; ++l) {
    const std::string h = prefix + "h." + std::to_string(l) + ".";
    add(h + "ln_1.weight", {d});
    add(h + "ln_1.bias", {d});
    add(h + "attn.c_attn.weight", {d, 3 * d});
    add(h + "attn.c_attn.bias", {3 * d});
    add(h + "attn.c_proj.weight", {d, d});
    add(h + "attn.c_proj.bias", {d});
    if (c.attn_only) continue;
    add(h + "ln_2.weight", {d});
    add(h + "ln_2.bias", {d});
    add(h + "mlp.c_fc.weight", {d, f});
    add(h + "mlp.c_fc.bias", {f});
    add(h + "mlp.c_proj.weight", {f, d});
    add(h + "mlp.c_proj.bias", {d});
  }
  add(prefix + "ln_f.weight", {d});
  add(prefix + "ln_f.bias", {d});
  if (!c.tie_word_embeddings) add("lm_head.weight", {c.vocab_size, d});
  return tensors;
}

/// A model directory holding `config` and `tensors`.
fs::path write_model(const TempDir& dir, const std::string& name, const ModelConfig& config,
                     const std::vector<circuitry::io::NamedTensor>& tensors) {
  const fs::path model = dir / name;
  fs::create_directories(model);
  circuitry::io::write_model_config(model / "config.json", config);
  circuitry::io::write_safetensors(model / "model.safetensors", tensors);
  return model;
}

template <class Tensor>
std::vector<double> values_of(const Tensor& tensor) {
  return std::vector<double>(tensor.begin(), tensor.end());
}

/// `a` and `b` have the same parameters (names and shapes), with equal values (as doubles).
template <class A, class B>
void check_same_weights(const Weights<A>& a, const Weights<B>& b) {
  REQUIRE(a.size() == b.size());
  for (const auto& [name, x] : a) {
    CAPTURE(name);
    REQUIRE(b.contains(name));
    const auto& y = b.at(name);
    CHECK(std::vector<std::size_t>(x.shape().begin(), x.shape().end()) == std::vector<std::size_t>(y.shape().begin(), y.shape().end()));
    CHECK(values_of(x) == values_of(y));
  }
}

void check_same_config(const ModelConfig& a, const ModelConfig& b) {
  CHECK(a.n_layer == b.n_layer);
  CHECK(a.n_head == b.n_head);
  CHECK(a.n_embd == b.n_embd);
  CHECK(a.n_positions == b.n_positions);
  CHECK(a.vocab_size == b.vocab_size);
  CHECK(a.n_inner == b.n_inner);
  CHECK(a.layer_norm_epsilon == b.layer_norm_epsilon);
  CHECK(a.attn_only == b.attn_only);
  CHECK(a.tie_word_embeddings == b.tie_word_embeddings);
}

}  // namespace

TEST_CASE("checkpoint: HF tensor names load, with or without the transformer. prefix") {
  TempDir dir;
  const ModelConfig config = tiny_config(false, true);
  const auto tensors = hf_tensors(config, "", 1);
  auto prefixed = hf_tensors(config, "transformer.", 1);  // same values, GPT2LMHeadModel names
  prefixed.push_back({"transformer.h.0.attn.bias", {1, 1, 8, 8}, std::vector<float>(64, 1.0f)});  // ignored buffers
  prefixed.push_back({"transformer.h.1.attn.masked_bias", {}, {-1e4f}});
  prefixed.push_back({"lm_head.weight", {11, 4}, std::vector<float>(44, 0.5f)});  // tied: ignored

  const auto plain = circuitry::io::load_checkpoint<float>(write_model(dir, "plain", config, tensors));
  const auto with_prefix = circuitry::io::load_checkpoint<double>(write_model(dir, "prefixed", config, prefixed));
  check_same_config(plain.config, config);
  check_same_weights(plain.weights, with_prefix.weights);
  CHECK_FALSE(plain.weights.contains("unembed.W_U"));
  const auto& w_in = plain.weights.at("blocks.1.mlp.W_in");
  CHECK(std::vector<std::size_t>(w_in.shape().begin(), w_in.shape().end()) == std::vector<std::size_t>{4, 12});
  CHECK(w_in(3, 11) == tensors[22].values[47]);  // h.1.mlp.c_fc.weight, row-major
  CHECK(&plain.weights.unembed() == &plain.weights.at("embed.W_E"));
}

TEST_CASE("checkpoint: save_checkpoint then load_checkpoint gives the same model") {
  TempDir dir;
  for (const bool attn_only : {false, true}) {
    CAPTURE(attn_only);
    const ModelConfig config = tiny_config(attn_only, /*tied=*/!attn_only);
    const auto original =
        circuitry::io::load_checkpoint<double>(write_model(dir, "source", config, hf_tensors(config, "", 7)));
    const fs::path saved = dir / (attn_only ? "saved_attn_only" : "saved");
    circuitry::io::save_checkpoint(saved, original.config, original.weights);
    const auto reloaded = circuitry::io::load_checkpoint<double>(saved);
    check_same_config(reloaded.config, config);
    check_same_weights(reloaded.weights, original.weights);
    CHECK(reloaded.weights.contains("unembed.W_U") == attn_only);
    if (attn_only) CHECK(reloaded.weights.at("unembed.W_U").size() == 44u);
    CHECK(reloaded.weights.contains("blocks.0.mlp.W_in") == !attn_only);
    if (!attn_only) CHECK(reloaded.weights.at("blocks.0.mlp.W_in").size() == 48u);
    CHECK(SafetensorsFile::open(saved / "model.safetensors").metadata().at("format") == "pt");
  }

  const ModelConfig config = tiny_config(false, true);
  auto weights =
      circuitry::io::load_checkpoint<float>(write_model(dir, "m", config, hf_tensors(config, "", 3))).weights;
  weights["blocks.1.mlp.b_in"] = circuitry::ParamArray<float>::from_shape({5});
  CHECK_ERROR(circuitry::io::save_checkpoint(dir / "bad", config, weights), "h.1.mlp.c_fc.bias", "[5]", "[12]");
}

TEST_CASE("checkpoint: missing, misshapen and unexpected tensors are named") {
  TempDir dir;
  const ModelConfig config = tiny_config(false, false);
  auto tensors = hf_tensors(config, "", 2);

  auto missing = tensors;
  std::erase_if(missing, [](const auto& t) { return t.name == "h.1.attn.c_proj.bias"; });
  CHECK_ERROR(circuitry::io::load_checkpoint<float>(write_model(dir, "missing", config, missing)), "model.safetensors",
              "missing tensor 'h.1.attn.c_proj.bias'");
  auto no_head = tensors;
  no_head.pop_back();
  CHECK_ERROR(circuitry::io::load_checkpoint<float>(write_model(dir, "no_head", config, no_head)),
              "missing tensor 'lm_head.weight'", "tie_word_embeddings = false");

  auto wide = tensors;
  wide[0] = {"wte.weight", {11, 6}, std::vector<float>(66, 0.0f)};
  CHECK_ERROR(circuitry::io::load_checkpoint<float>(write_model(dir, "wide", config, wide)), "tensor 'wte.weight'",
              "has shape [11, 6]", "config.json implies [11, 4]");

  auto poisoned = tensors;
  poisoned[2].values[1] = std::numeric_limits<float>::quiet_NaN();
  CHECK_ERROR(circuitry::io::load_checkpoint<float>(write_model(dir, "nan", config, poisoned)), "tensor '" + poisoned[2].name + "'",
              "non-finite value", "flat index 1");

  ModelConfig one_layer = config;
  one_layer.n_layer = 1;
  CHECK_ERROR(circuitry::io::load_checkpoint<float>(write_model(dir, "extra", one_layer, tensors)),
              "unexpected tensor 'h.1.", "n_layer = 1");

  const fs::path no_weights = dir / "no_weights";
  fs::create_directories(no_weights);
  circuitry::io::write_model_config(no_weights / "config.json", config);
  CHECK_ERROR(circuitry::io::load_checkpoint<float>(no_weights), (no_weights / "model.safetensors").string(),
              "does not exist");
  CHECK_ERROR(circuitry::io::load_checkpoint<float>(dir / "nowhere"), "not a directory");
}

TEST_CASE("checkpoint: config.json is validated key by key") {
  TempDir dir;
  const fs::path file = dir / "config.json";
  auto read = [&](const std::string& text) {
    write_file(file, text);
    return circuitry::io::read_model_config(file);
  };
  const std::string sizes = R"("n_layer": 2, "n_head": 2, "n_embd": 4, "n_positions": 8, "vocab_size": 11)";

  const ModelConfig defaults = read("{" + sizes + R"(, "n_inner": null, "model_type": "gpt2"})");
  CHECK(defaults.n_inner == 16);
  CHECK(defaults.layer_norm_epsilon == 1e-5);
  CHECK_FALSE(defaults.attn_only);
  CHECK(defaults.tie_word_embeddings);
  const ModelConfig explicit_values = read(
      "{" + sizes + R"(, "n_inner": 6, "layer_norm_epsilon": 1e-6, "attn_only": true, "tie_word_embeddings": false})");
  CHECK(explicit_values.n_inner == 6);
  CHECK(explicit_values.layer_norm_epsilon == 1e-6);
  CHECK(explicit_values.attn_only);
  CHECK_FALSE(explicit_values.tie_word_embeddings);

  CHECK_ERROR(circuitry::io::read_model_config(dir / "absent.json"), "absent.json", "does not exist");
  CHECK_ERROR(read(R"({"n_layer": 2,})"), file.string(), "not valid JSON");
  CHECK_ERROR(read("[1, 2]"), "expected a JSON object");
  CHECK_ERROR(read(R"({"n_layer": 2, "n_embd": 4, "n_positions": 8, "vocab_size": 11})"), file.string(),
              "missing key \"n_head\"");
  CHECK_ERROR(read(R"({"n_layer": "2", "n_head": 2, "n_embd": 4, "n_positions": 8, "vocab_size": 11})"),
              "\"n_layer\" must be a positive integer", "\"2\"");
  CHECK_ERROR(read(R"({"n_layer": 2, "n_head": 2, "n_embd": 4, "n_positions": 0, "vocab_size": 11})"),
              "\"n_positions\" must be positive");
  CHECK_ERROR(read(R"({"n_layer": 2, "n_head": 3, "n_embd": 4, "n_positions": 8, "vocab_size": 11})"), file.string(),
              "n_embd 4 is not divisible by n_head 3");
  CHECK_ERROR(read("{" + sizes + R"(, "n_inner": -4})"), "\"n_inner\" must be positive");
  CHECK_ERROR(read("{" + sizes + R"(, "layer_norm_epsilon": "small"})"), "layer_norm_epsilon");
  CHECK_ERROR(read("{" + sizes + R"(, "attn_only": 1})"), "\"attn_only\" must be true or false");
  CHECK_ERROR(read("{" + sizes + R"(, "model_type": "llama"})"), "\"model_type\" is \"llama\"");
  CHECK_ERROR(read("{" + sizes + R"(, "activation_function": "relu"})"), "activation_function");
  CHECK_ERROR(read("{" + sizes + R"(, "scale_attn_by_inverse_layer_idx": true})"), "scale_attn_by_inverse_layer_idx");
}

TEST_CASE("task: read_task and write_task round trip; bad lines name the line and the fix") {
  TempDir dir;
  const fs::path file = dir / "task.jsonl";
  auto read = [&](const std::string& text) {
    write_file(file, text);
    return circuitry::read_task(file, 50, 6);
  };

  const circuitry::Task task = read(
      "{\"clean\": [1, 2, 3], \"corrupted\": [1, 4, 3], \"answer\": 7, \"wrong\": 8, \"note\": \"extra keys are "
      "fine\"}\n"
      "\n"
      "  \r\n"
      "{\"clean\": [0], \"corrupted\": [49], \"answer\": 0, \"wrong\": 49}\r\n");
  REQUIRE(task.examples.size() == 2);
  CHECK(task.examples[0].clean == std::vector<int>{1, 2, 3});
  CHECK(task.examples[0].corrupted == std::vector<int>{1, 4, 3});
  CHECK(task.examples[0].answer == std::vector<int>{7});
  CHECK(task.examples[1].wrong == std::vector<int>{49});

  circuitry::io::write_file_atomically_with(dir / "copy.jsonl", [&](std::ostream& out) { circuitry::write_task(out, task); });
  const circuitry::Task copy = circuitry::read_task(dir / "copy.jsonl", 50, 6);
  REQUIRE(copy.examples.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(copy.examples[i].clean == task.examples[i].clean);
    CHECK(copy.examples[i].corrupted == task.examples[i].corrupted);
    CHECK(copy.examples[i].answer == task.examples[i].answer);
    CHECK(copy.examples[i].wrong == task.examples[i].wrong);
  }

  const std::string good = "{\"clean\": [1], \"corrupted\": [2], \"answer\": 3, \"wrong\": 4}\n";
  const std::string where = file.string();
  CHECK_ERROR(circuitry::read_task(dir / "absent.jsonl", 50, 6), "absent.jsonl", "does not exist");
  CHECK_ERROR(read(""), where, "no examples");
  CHECK_ERROR(read("\n \n"), "no examples");
  CHECK_ERROR(
      read(good + good +
           "{\"clean\": [1, 2, 3, 4, 5, 6, 7], \"corrupted\": [1, 2, 3, 4, 5, 6], \"answer\": 1, \"wrong\": 2}"),
      where + " line 3", "clean has 7 tokens but corrupted has 6", "must have equal length");
  CHECK_ERROR(read(good + "{\"clean\": [1, 50], \"corrupted\": [1, 2], \"answer\": 3, \"wrong\": 4}"),
              where + " line 2", "clean[1] = 50 is out of range", "[0, 50)");
  CHECK_ERROR(read("{\"clean\": [1], \"corrupted\": [2], \"answer\": 3, \"wrong\": -1}"), "line 1",
              "wrong = -1 is out of range");
  CHECK_ERROR(read("{\"clean\": [1], \"corrupted\": [2], \"answer\": 99, \"wrong\": 4}"), "answer = 99");
  CHECK_ERROR(read("{\"clean\": [1,2,3,4,5,6,7], \"corrupted\": [1,2,3,4,5,6,7], \"answer\": 3, \"wrong\": 4}"),
              "line 1", "7 tokens", "n_positions = 6");
  CHECK_ERROR(read("{\"clean\": [1], \"corrupted\": [2], \"answer\": 3}"), "line 1", "missing key \"wrong\"");
  CHECK_ERROR(read("{\"clean\": [], \"corrupted\": [], \"answer\": 3, \"wrong\": 4}"), "\"clean\" is empty");
  CHECK_ERROR(read("{\"clean\": [1.5], \"corrupted\": [2], \"answer\": 3, \"wrong\": 4}"),
              "clean[0] must be an integer");
  CHECK_ERROR(read("{\"clean\": \"1 2\", \"corrupted\": [2], \"answer\": 3, \"wrong\": 4}"),
              "\"clean\" must be an array");
  CHECK_ERROR(read(good + "\n{\"clean\": [1], \"corrupted\": [2],}"), where + " line 3", "not valid JSON",
              "one JSON object");
  CHECK_ERROR(read("[1, 2]"), "line 1", "expected a JSON object");
  CHECK_ERROR(read("{\"clean_text\": \"When Mary and John\", \"corrupted\": [2], \"answer\": 3, \"wrong\": 4}"),
              "line 1", "clean_text", "tokenizer");
}

TEST_CASE("save_checkpoint refuses a model the GPT-2 layout cannot describe") {
  circuitry::ModelConfig c;
  c.n_layer = 1, c.n_head = 1, c.n_embd = 4, c.n_positions = 4, c.vocab_size = 5, c.n_inner = 4;
  c.normalization = "none", c.attention_dir = "bidirectional", c.act_fn = "relu";
  const auto model = circuitry::Model<circuitry::Tracr, float>::random(c, 1);
  const auto dir = std::filesystem::temp_directory_path() / "circuitry-save-tracr";
  CHECK_THROWS_WITH_AS(circuitry::io::save_checkpoint(dir, c, model.weights()), doctest::Contains("GPT-2 layout"), circuitry::Error);
  CHECK_FALSE(std::filesystem::exists(dir / "config.json"));
}

namespace {

const fs::path fixtures = CIRCUITRY_FIXTURES_DIR;

/// x rounded to the nearest bfloat16 (ties to even), as torch and the fixture scripts round.
float round_to_bf16(float x) {
  std::uint32_t bits = std::bit_cast<std::uint32_t>(x);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return std::bit_cast<float>(bits & 0xFFFF0000u);
}

/// x rounded to the nearest IEEE half (ties to even), for |x| below the largest half.
float round_to_f16(float x) {
  const float smallest_normal = std::ldexp(1.0f, -14);
  if (std::abs(x) < smallest_normal) return std::nearbyint(x * std::ldexp(1.0f, 24)) * std::ldexp(1.0f, -24);  // subnormals: multiples of 2^-24
  std::uint32_t bits = std::bit_cast<std::uint32_t>(x);  // normal halves keep 10 of float's 23 mantissa bits
  bits += 0xFFFu + ((bits >> 13) & 1u);
  return std::bit_cast<float>(bits & ~0x1FFFu);
}

/// Copies model directory `from` to `to` with its tensors spread round-robin over `shards`
/// shard files and a model.safetensors.index.json, as save_pretrained(max_shard_size=...)
/// writes them. Tensors that cannot be read as floats (TransformerLens' BOOL masks) are left out.
void write_sharded_copy(const fs::path& from, const fs::path& to, std::size_t shards) {
  fs::create_directories(to);
  fs::copy_file(from / "config.json", to / "config.json");
  const SafetensorsFile source = SafetensorsFile::open(from / "model.safetensors");
  std::vector<std::vector<circuitry::io::NamedTensor>> parts(shards);
  nlohmann::json weight_map = nlohmann::json::object();
  std::size_t next = 0;
  for (const std::string& name : source.names()) {
    if (source.info(name).dtype == circuitry::io::DType::BOOL) continue;
    const std::string shard = "model-0000" + std::to_string(next + 1) + "-of-0000" + std::to_string(shards) + ".safetensors";
    parts[next].push_back({name, source.info(name).shape, source.read<float>(name)});
    weight_map[name] = shard;
    next = (next + 1) % shards;
  }
  for (std::size_t i = 0; i < shards; ++i)
    circuitry::io::write_safetensors(
        to / ("model-0000" + std::to_string(i + 1) + "-of-0000" + std::to_string(shards) + ".safetensors"), parts[i],
        {{"format", "pt"}});
  write_file(to / "model.safetensors.index.json", nlohmann::json{{"metadata", {}}, {"weight_map", weight_map}}.dump(2));
}

}  // namespace

using circuitry::io::TensorStore;

TEST_CASE("tensor store: hf-llama in one file and in three shards gives the same tensors") {
  const TensorStore single = TensorStore::open(fixtures / "hf-llama");
  const TensorStore sharded = TensorStore::open(fixtures / "hf-llama-sharded");
  CHECK(single.path() == fixtures / "hf-llama" / "model.safetensors");
  CHECK(sharded.path() == fixtures / "hf-llama-sharded" / "model.safetensors.index.json");
  const std::vector<std::string> names = sharded.names();
  CHECK(names == single.names());
  CHECK(std::is_sorted(names.begin(), names.end()));
  CHECK(sharded.size() == 21);
  CHECK(single.size() == 21);

  std::set<std::string> shards;
  for (const std::string& name : names) {
    CAPTURE(name);
    CHECK(sharded.contains(name));
    CHECK(sharded.info(name).dtype == single.info(name).dtype);
    CHECK(sharded.info(name).shape == single.info(name).shape);
    CHECK(sharded.read<float>(name) == single.read<float>(name));
    CHECK(sharded.read<double>(name) == single.read<double>(name));
    std::vector<float> into(sharded.info(name).num_elements());
    sharded.read_into(name, std::span<float>(into));
    CHECK(into == single.read<float>(name));
    CHECK(single.file_of(name) == single.path().string());
    shards.insert(fs::path(sharded.file_of(name)).filename().string());
  }
  CHECK(shards == std::set<std::string>{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                        "model-00003-of-00003.safetensors"});
  CHECK(sharded.file_of("model.embed_tokens.weight") ==
        (fixtures / "hf-llama-sharded" / "model-00001-of-00003.safetensors").string());
  CHECK_FALSE(sharded.contains("model.nope"));
  CHECK_ERROR(sharded.info("model.nope"), "hf-llama-sharded", "no tensor named 'model.nope'");
  CHECK_ERROR(sharded.read<float>("model.nope"), "hf-llama-sharded", "no tensor named 'model.nope'");
  CHECK_ERROR(sharded.file_of("model.nope"), "no tensor named 'model.nope'");
}

TEST_CASE("tensor store: F16 and BF16 tensors read as their float32 originals rounded") {
  auto check_rounded = [](const std::string& original, const std::string& rounded, float (*round)(float)) {
    CAPTURE(rounded);
    const TensorStore f32 = TensorStore::open(fixtures / original);
    const TensorStore low = TensorStore::open(fixtures / rounded);
    REQUIRE(low.names() == f32.names());
    std::size_t values = 0;
    for (const std::string& name : f32.names()) {
      CAPTURE(name);
      CHECK(low.info(name).dtype == (round == round_to_bf16 ? circuitry::io::DType::BF16 : circuitry::io::DType::F16));
      std::vector<float> expected = f32.read<float>(name);
      for (float& v : expected) v = round(v);
      const std::vector<float> got = low.read<float>(name);
      CHECK(got == expected);
      CHECK(low.read<double>(name) == std::vector<double>(got.begin(), got.end()));  // exact in double too
      values += got.size();
    }
    CHECK(values > 1000);
  };
  check_rounded("gpt2-tiny", "gpt2-tiny-f16", round_to_f16);
  check_rounded("gpt2-tiny", "gpt2-tiny-bf16", round_to_bf16);
  check_rounded("hf-llama", "hf-llama-bf16", round_to_bf16);
}

TEST_CASE("safetensors: mapped and streamed reads give the same bytes, piece by piece") {
  namespace detail = circuitry::io::detail;
  for (const fs::path& file : {fixtures / "gpt2-tiny" / "model.safetensors", fixtures / "hf-llama-bf16" / "model.safetensors",
                               fixtures / "hf-llama-sharded" / "model-00002-of-00003.safetensors"}) {
    CAPTURE(file);
    const std::string bytes = circuitry::io::read_regular_file(file);
    const SafetensorsFile st = SafetensorsFile::open(file);
    std::uint64_t header = 0;
    std::memcpy(&header, bytes.data(), 8);
    // The whole data section, then each tensor, in pieces of a few bytes (not page-aligned), a
    // page and a bit, and the default sizes.
    std::vector<std::pair<std::uint64_t, std::size_t>> ranges = {{8 + header, bytes.size() - 8 - header}};
    for (const std::string& name : st.names())
      ranges.emplace_back(8 + header + st.info(name).begin, st.info(name).end - st.info(name).begin);
    for (const std::size_t piece : {std::size_t(6), std::size_t(4096 + 12), std::size_t(1) << 24}) {
      for (const auto& [offset, length] : ranges) {
        std::string mapped, streamed;
        auto collect = [&](std::string& into) {
          return [&into, piece](const unsigned char* data, std::size_t n) {
            CHECK(n % 4 == 0);
            CHECK(n <= std::max<std::size_t>(piece - piece % 4, 4));
            into.append(reinterpret_cast<const char*>(data), n);
          };
        };
        detail::read_file_range(file, bytes.size(), offset, length, 4, detail::ReadMethod::map, "failed", collect(mapped),
                                piece, piece);
        detail::read_file_range(file, bytes.size(), offset, length, 4, detail::ReadMethod::stream, "failed",
                                collect(streamed), piece, piece);
        CHECK(mapped == bytes.substr(offset, length));
        CHECK(streamed == mapped);
      }
    }
  }

  // A file that changed size since it was validated is refused by either method.
  TempDir dir;
  const fs::path copy = dir / "model.safetensors";
  fs::copy_file(fixtures / "gpt2-tiny" / "model.safetensors", copy);
  const SafetensorsFile st = SafetensorsFile::open(copy);
  const std::string name = st.names().front();
  std::ofstream(copy, std::ios::binary | std::ios::app) << "extra";
  CHECK_ERROR(st.read<float>(name), copy.string(), "tensor '" + name + "'", "changed or truncated");
  for (const auto method : {detail::ReadMethod::map, detail::ReadMethod::stream})
    CHECK_ERROR(detail::read_file_range(copy, fs::file_size(copy) - 5, 8, 4, 4, method, "the failure",
                                        [](const unsigned char*, std::size_t) {}),
                "the failure");
}

TEST_CASE("safetensors: a tensor larger than one mapped window converts across the windows") {
  TempDir dir;
  const std::size_t count = (std::size_t(1) << 22) + 1001;  // 16 MiB of F32 and some: two windows
  std::vector<float> values(count);
  for (std::size_t i = 0; i < count; ++i) values[i] = float(i % 65521) * 0.25f - float(i % 7);
  circuitry::io::write_safetensors(dir / "big.safetensors", {{"small", {3}, {1.0f, 2.0f, 3.0f}}, {"big", {count}, values}});
  const SafetensorsFile st = SafetensorsFile::open(dir / "big.safetensors");
  CHECK(st.read<float>("big") == values);
  const std::vector<double> wide = st.read<double>("big");
  CHECK(std::equal(wide.begin(), wide.end(), values.begin()));
}

TEST_CASE("tensor store: sharded GPT-2 and TransformerLens directories load like their single files") {
  TempDir dir;
  for (const std::string name : {"gpt2-tiny", "attn-only", "tl-gelu-new", "tl-lnpre", "tl-attn-only"}) {
    CAPTURE(name);
    write_sharded_copy(fixtures / name, dir / name, 3);
    const auto single = circuitry::io::load_model_directory<double>(fixtures / name);
    const auto sharded = circuitry::io::load_model_directory<double>(dir / name);
    check_same_config(sharded.config, single.config);
    check_same_weights(sharded.weights, single.weights);
  }

  // A sharded GPT-2 directory names the shard of a bad tensor, and the index for a missing one.
  write_sharded_copy(fixtures / "gpt2-tiny", dir / "short", 2);
  nlohmann::json index = circuitry::io::read_json_file(dir / "short" / "model.safetensors.index.json");
  const std::string shard = index["weight_map"]["transformer.ln_f.bias"];
  const SafetensorsFile part = SafetensorsFile::open(dir / "short" / shard);
  std::vector<circuitry::io::NamedTensor> kept;
  for (const std::string& tensor : part.names())
    if (tensor != "transformer.ln_f.bias") kept.push_back({tensor, part.info(tensor).shape, part.read<float>(tensor)});
  circuitry::io::write_safetensors(dir / "short" / shard, kept);
  index["weight_map"].erase("transformer.ln_f.bias");
  write_file(dir / "short" / "model.safetensors.index.json", index.dump());
  CHECK_ERROR(circuitry::io::load_model_directory<float>(dir / "short"),
              (dir / "short" / "model.safetensors.index.json").string(), "missing tensor 'ln_f.bias'");
}

namespace {

/// The text append_json_number writes for v.
template <class T>
std::string number_text(T v) {
  std::string text;
  circuitry::io::append_json_number(text, v);
  return text;
}

/// v's text read back as JSON (nlohmann reads a double, as Python does) and converted to T has
/// v's bits: a float written as a float comes back through a double reader too.
template <class T, class Bits>
void check_round_trip(T v) {
  const std::string text = number_text(v);
  INFO("text: " << text);
  const nlohmann::json parsed = nlohmann::json::parse(text);
  REQUIRE(parsed.is_number_float());  // "3.0", never "3", which readers would take as an integer
  CHECK(std::bit_cast<Bits>(static_cast<T>(parsed.get<double>())) == std::bit_cast<Bits>(v));
}

}  // namespace

TEST_CASE("number text: floats and doubles read back bit for bit, in the shortest form") {
  using F = std::numeric_limits<float>;
  using D = std::numeric_limits<double>;
  for (float v : {0.0f, -0.0f, 1.0f, -3.0f, 0.1f, 1e20f, 1e8f, F::min(), F::denorm_min(), -F::denorm_min(), F::max(),
                  F::lowest(), F::epsilon(), std::nextafter(F::min(), 0.0f)})
    check_round_trip<float, std::uint32_t>(v);
  for (double v : {0.0, -0.0, 1.0, -3.0, 0.1, 1e300, D::min(), D::denorm_min(), -D::denorm_min(), D::max(), D::lowest(),
                   D::epsilon(), std::nextafter(D::min(), 0.0), double(0.1f)})
    check_round_trip<double, std::uint64_t>(v);
  // Random bit patterns cover every exponent, subnormals included; NaNs and infinities skipped.
  std::mt19937_64 rng(13);
  for (int i = 0; i < 200000; ++i) {
    const float f = std::bit_cast<float>(static_cast<std::uint32_t>(rng()));
    if (std::isfinite(f)) check_round_trip<float, std::uint32_t>(f);
    const double d = std::bit_cast<double>(rng());
    if (std::isfinite(d)) check_round_trip<double, std::uint64_t>(d);
  }
  // Shortest: a float takes at most 9 significant digits, not the 17 of its widening.
  CHECK(number_text(0.1f) == "0.1");
  CHECK(number_text(double(0.1f)) == "0.10000000149011612");
  CHECK(number_text(-0.0f) == "-0.0");
  CHECK(number_text(1e20f) == "1e+20");
  CHECK(number_text(F::denorm_min()) == "1e-45");
  std::string array;
  const float row[] = {1.5f, -2.0f, 0.25f};
  circuitry::io::append_json_array(array, row, 3);
  CHECK(array == "[1.5, -2.0, 0.25]");
  CHECK(nlohmann::json::parse(array) == nlohmann::json::parse("[1.5, -2, 0.25]"));
  // A matrix, rows formatted on the pool: the same text at any thread count.
  std::vector<float> m(7 * 300);
  for (auto& x : m) x = std::bit_cast<float>(static_cast<std::uint32_t>(rng()) & 0xBF7FFFFFu);  // finite
  std::string serial, parallel;
  const int threads_before = circuitry::num_threads();
  circuitry::set_num_threads(1);
  circuitry::io::append_json_matrix(serial, m.data(), 7, 300);
  circuitry::set_num_threads(3);
  circuitry::io::append_json_matrix(parallel, m.data(), 7, 300);
  circuitry::set_num_threads(threads_before);
  CHECK(serial == parallel);
  const auto parsed = nlohmann::json::parse(serial);
  REQUIRE(parsed.size() == 7);
  CHECK(parsed[6].size() == 300);
  CHECK(parsed[6][299].get<float>() == m.back());
  std::string empty;
  circuitry::io::append_json_matrix(empty, m.data(), 0, 300);
  CHECK(empty == "[]");

  for (double bad : {std::nan(""), D::infinity(), -D::infinity()})
    CHECK_ERROR(number_text(bad), "as a JSON number", "no NaN or infinity");
  CHECK_ERROR(number_text(F::quiet_NaN()), "as a JSON number");
}

TEST_CASE("npy: numpy's version 1.0 header, padded to 64 bytes, then the values as they lie in memory") {
  const std::vector<float> values = {1.5f, -2.0f, 0.25f, 3.0f, 4.0f, -0.0f};
  std::ostringstream out;
  circuitry::io::write_npy(out, values.data(), {2, 3});
  const std::string bytes = out.str();
  REQUIRE(bytes.size() == 128 + values.size() * sizeof(float));  // numpy's own files have this 128-byte header too
  CHECK(bytes.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
  CHECK(std::uint8_t(bytes[8]) + 256 * std::uint8_t(bytes[9]) == 128 - 10);
  const std::string dict = bytes.substr(10, 118);
  CHECK(dict.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 0) == 0);
  CHECK(dict.back() == '\n');
  CHECK(std::memcmp(bytes.data() + 128, values.data(), values.size() * sizeof(float)) == 0);
  // Python's tuple spelling for one and zero dimensions, and the double descriptor.
  CHECK(circuitry::io::npy_header<double>({5}).find("'descr': '<f8', 'fortran_order': False, 'shape': (5,), }") != std::string::npos);
  CHECK(circuitry::io::npy_header<float>({}).find("'shape': (), }") != std::string::npos);
  CHECK(circuitry::io::npy_header<float>({32, 50257}).size() % 64 == 0);
}
