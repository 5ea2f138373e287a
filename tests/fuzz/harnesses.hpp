#pragma once
// The fuzz harnesses of tests/fuzz (one libFuzzer target per parser, fuzz_<name>.cpp) and the
// replay test (test_reliability.cpp) share these bodies. Each takes arbitrary bytes and feeds
// them to one parser; a circuitry::Error is the expected outcome for bad input, and anything
// else (another exception, a crash, a sanitizer report, a broken invariant) is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <circuitry/graph/circuit.hpp>
#include <circuitry/io/model_directory.hpp>
#include <circuitry/io/circuit_json.hpp>
#include <circuitry/io/gguf_file.hpp>
#include <circuitry/io/gguf_model.hpp>
#include <circuitry/io/json_parse.hpp>
#include <circuitry/io/safetensors.hpp>
#include <circuitry/io/scores_json.hpp>
#include <circuitry/io/tensor_store.hpp>
#include <circuitry/text/bpe_tokenizer.hpp>
#include <circuitry/text/gguf_tokenizer.hpp>
#include <circuitry/text/load_tokenizer.hpp>
#include <circuitry/text/task.hpp>

namespace circuitry::fuzz {

/// The checkpoint harness's input: config.json, this line, then model.safetensors.
inline constexpr std::string_view checkpoint_separator = "\n--- model.safetensors ---\n";

namespace detail {

/// A folder of this process's own, removed at exit: the file-based parsers read from it.
inline const std::filesystem::path& scratch() {
  struct Scratch {
    std::filesystem::path path = std::filesystem::temp_directory_path() / ("circuitry-fuzz-" + std::to_string(::getpid()));
    Scratch() { std::filesystem::create_directories(path); }
    ~Scratch() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static const Scratch scratch;
  return scratch.path;
}

inline void write_bytes(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// The GPT-2 vocabulary of data/gpt2-bpe, loaded once.
inline const text::ByteLevelBpeTokenizer& gpt2() {
  static const text::ByteLevelBpeTokenizer tokenizer = text::ByteLevelBpeTokenizer::from_files(
      CIRCUITRY_SOURCE_DIR "/data/gpt2-bpe/vocab.json", CIRCUITRY_SOURCE_DIR "/data/gpt2-bpe/merges.txt");
  return tokenizer;
}

/// A broken invariant: abort, so libFuzzer records the input.
inline void expect(bool condition) {
  if (!condition) std::abort();
}

}  // namespace detail

/// A safetensors file: open (every header check), then every float tensor read.
inline void safetensors(const std::uint8_t* data, std::size_t size) {
  const std::filesystem::path path = detail::scratch() / "model.safetensors";
  detail::write_bytes(path, detail::as_text(data, size));
  const io::SafetensorsFile file = io::SafetensorsFile::open(path);
  for (const std::string& name : file.names()) {
    const io::DType dtype = file.info(name).dtype;
    if (dtype == io::DType::F32 || dtype == io::DType::F16 || dtype == io::DType::BF16 || dtype == io::DType::F64)
      detail::expect(file.read<float>(name).size() == file.info(name).num_elements());
  }
}

/// A GGUF file: open (every header check), every tensor read and dequantized, then the model
/// config and the tokenizer its metadata describe, where it has them.
inline void gguf(const std::uint8_t* data, std::size_t size) {
  const std::filesystem::path path = detail::scratch() / "model.gguf";
  detail::write_bytes(path, detail::as_text(data, size));
  const io::GgufFile file = io::GgufFile::open(path);
  for (const std::string& name : file.names()) detail::expect(file.read<float>(name).size() == file.info(name).num_elements());
  if (file.has("general.architecture")) {
    const ModelConfig c = io::read_gguf_config(file);
    detail::expect(c.n_layer > 0 && c.n_embd > 0 && c.vocab_size > 0);
  }
  if (text::gguf_has_tokenizer(file)) {  // byte-level or SentencePiece
    const auto tokenizer = text::load_gguf_tokenizer(file);
    detail::expect(tokenizer->decode(tokenizer->encode_continuation("Hello world 123")) == "Hello world 123");
  }
}

/// A model directory: config.json and model.safetensors, split at checkpoint_separator.
inline void checkpoint(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes = detail::as_text(data, size);
  const std::size_t split = bytes.find(checkpoint_separator);
  const std::filesystem::path dir = detail::scratch() / "checkpoint";
  std::filesystem::create_directories(dir);
  detail::write_bytes(dir / "config.json", bytes.substr(0, split));
  detail::write_bytes(dir / "model.safetensors",
                      split == std::string_view::npos ? std::string_view() : bytes.substr(split + checkpoint_separator.size()));
  const auto loaded = io::load_model_directory<float>(dir);  // Hugging Face or TransformerLens
  detail::expect(loaded.weights.size() == io::declared_parameters(loaded.config).size());  // every parameter, nothing else
}

/// A sharded model's model.safetensors.index.json, over the three shards of
/// tests/fixtures/hf-llama-sharded: open (every index and shard check), then every tensor read.
inline void shard_index(const std::uint8_t* data, std::size_t size) {
  static const std::filesystem::path dir = [] {
    const std::filesystem::path folder = detail::scratch() / "sharded";
    std::filesystem::create_directories(folder);
    for (const char* shard : {"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                              "model-00003-of-00003.safetensors"})
      std::filesystem::copy_file(std::filesystem::path(CIRCUITRY_SOURCE_DIR "/tests/fixtures/hf-llama-sharded") / shard,
                                 folder / shard, std::filesystem::copy_options::overwrite_existing);
    return folder;
  }();
  detail::write_bytes(dir / "model.safetensors.index.json", detail::as_text(data, size));
  const io::TensorStore store = io::TensorStore::open(dir);
  for (const std::string& name : store.names())
    detail::expect(store.read<float>(name).size() == store.info(name).num_elements());
}

/// A task file (ids or text fields, GPT-2's vocabulary and context).
inline void task(const std::uint8_t* data, std::size_t size) {
  const Task parsed = task_from_text(std::string(detail::as_text(data, size)), "task.jsonl", 50257, 1024, &detail::gpt2());
  for (const TaskExample& e : parsed.examples)
    detail::expect(!e.clean.empty() && e.clean.size() == e.corrupted.size() && e.answer.empty() == e.wrong.empty());
}

/// A scores file; what parses must write back and parse to the same scores.
inline void scores(const std::uint8_t* data, std::size_t size) {
  const io::Scores parsed = io::scores_from_json(io::parse_json(detail::as_text(data, size), "scores.json"), "scores.json");
  const Graph graph(parsed.shape);
  const std::string written = io::scores_json_text(graph, parsed.values, parsed.meta);
  const io::Scores again = io::scores_from_json(io::parse_json(written, "written scores"), "written scores");
  detail::expect(again.values == parsed.values && again.meta.clean_metric == parsed.meta.clean_metric);
}

/// A circuit file in EAP-IG's layout.
inline void circuit(const std::uint8_t* data, std::size_t size) {
  const io::CircuitFile parsed = io::circuit_from_json(io::parse_json(detail::as_text(data, size), "circuit.json"), "circuit.json");
  const Graph graph(parsed.shape);
  detail::expect(parsed.on(graph).in_graph.size() == graph.n_edges());
}

/// A ground-truth file against GPT-2 small's graph (the shape of the shipped ground truths).
inline void ground_truth(const std::uint8_t* data, std::size_t size) {
  static const Graph graph(GraphShape{12, 12, true, false});
  const auto truth = io::ground_truth_from_json(graph, io::parse_json(detail::as_text(data, size), "truth.json"), "truth.json");
  detail::expect(truth.size() == graph.n_edges());
}

/// Text to encode with GPT-2's tokenizer; whatever encodes must decode to the same bytes. Then
/// with a SentencePiece one (Llama 2's style, tests/fixtures/tokenizer/spm-legacy): the same
/// bytes back, each '\u2581' of the text read as a space.
inline void tokenizer(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = detail::as_text(data, size);
  const std::vector<int> ids = detail::gpt2().encode(text);
  detail::expect(detail::gpt2().decode(ids) == text);
  static const auto spm = text::load_tokenizer(CIRCUITRY_SOURCE_DIR "/tests/fixtures/tokenizer/spm-legacy");
  std::string spaced(text);
  for (std::size_t at; (at = spaced.find("\u2581")) != std::string::npos;) spaced.replace(at, 3, " ");
  detail::expect(spm->decode(spm->encode_continuation(text)) == spaced);
}

/// A SentencePiece tokenizer.model (Unigram or BPE): parsed, checked, built, then texts encoded
/// and every id decoded.
inline void sentencepiece_model(const std::uint8_t* data, std::size_t size) {
  const auto tokenizer = text::load_sentencepiece_model(detail::as_text(data, size), "fuzz.model");
  for (const char* text : {"Hello  world 123", " \u00e9t\u00e9 \xF0\x9F\xA6\x9C", ""}) {
    for (const int id : tokenizer->encode(text)) detail::expect(id >= 0 && std::size_t(id) < tokenizer->vocab_size());
    (void)tokenizer->decode(tokenizer->encode_continuation(text));
  }
}

struct Harness {
  const char* name;
  void (*run)(const std::uint8_t*, std::size_t);
};

/// Every harness, by the name of its fuzz target (fuzz_<name>) and regression folder.
inline const std::vector<Harness>& harnesses() {
  static const std::vector<Harness> all = {{"safetensors", safetensors}, {"checkpoint", checkpoint},
                                           {"shard_index", shard_index}, {"task", task},
                                           {"scores", scores},           {"circuit", circuit},
                                           {"ground_truth", ground_truth}, {"tokenizer", tokenizer},
                                           {"gguf", gguf},               {"sentencepiece_model", sentencepiece_model}};
  return all;
}

/// The body of every LLVMFuzzerTestOneInput: the library's own Error is fine, anything else
/// escapes and aborts the run.
inline int run_one(void (*harness)(const std::uint8_t*, std::size_t), const std::uint8_t* data, std::size_t size) {
  try {
    harness(data, size);
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace circuitry::fuzz
