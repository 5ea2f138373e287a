// Reliability: every parser turns every malformed input into a circuitry::Error that
// names the file; sizes claimed by a file are checked against its data before anything is
// allocated; non-finite metrics are refused; outputs are written atomically and together; the
// inputs that fuzzing found (tests/fuzz/regressions) stay fixed.
#include <doctest/doctest.h>

#include "error_check.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <circuitry/circuitry.hpp>

#include "fuzz/harnesses.hpp"

#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace circuitry;

namespace {

using circuitry::testing::TempDir;
using circuitry::testing::write_file;

std::string read_file(const fs::path& path) { return io::read_regular_file(path); }

std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string bytes(8, '\0');
  for (std::size_t i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  return bytes + header + data;
}

const fs::path fixtures = CIRCUITRY_FIXTURES_DIR;

/// The files in `dir` (names only), sorted.
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

const std::string scores_1e999 = R"({"method": "eap", "metric": "logit_diff", "clean_metric": 1e999, "corrupted_metric": 0,
                                     "edges": {"input->a0.h0<q>": 1}})";

}  // namespace

TEST_CASE("parsers: a number no double holds (1e999) is a named error, not nlohmann's out_of_range") {
  TempDir dir;
  const Graph graph(GraphShape{1, 1, false, false});

  write_file(dir / "config.json", R"({"n_layer": 1e999, "n_head": 2, "n_embd": 4, "n_positions": 8, "vocab_size": 11})");
  CHECK_ERROR(io::read_model_config(dir / "config.json"), (dir / "config.json").string(), "number out of range", "1e999");

  write_file(dir / "m.safetensors", safetensors_bytes(R"({"x": {"dtype": "F32", "shape": [1e999], "data_offsets": [0, 4]}})", "abcd"));
  CHECK_ERROR(io::SafetensorsFile::open(dir / "m.safetensors"), (dir / "m.safetensors").string(), "number out of range");

  write_file(dir / "task.jsonl", "{\"clean\": [1, 2], \"corrupted\": [1, 3], \"answer\": 4, \"wrong\": 5}\n"
                                 "{\"clean\": [1e999], \"corrupted\": [1], \"answer\": 4, \"wrong\": 5}\n");
  CHECK_ERROR(read_task(dir / "task.jsonl", 10, 8), (dir / "task.jsonl").string() + " line 2", "number out of range");

  write_file(dir / "scores.json", scores_1e999);
  CHECK_ERROR(io::read_scores_json(dir / "scores.json"), (dir / "scores.json").string(), "number out of range");

  write_file(dir / "circuit.json", R"({"cfg": {"n_layers": 1, "n_heads": 1, "d_model": 1e999, "parallel_attn_mlp": false},
                                       "nodes": {}, "edges": {}})");
  CHECK_ERROR(io::read_circuit_json(dir / "circuit.json"), (dir / "circuit.json").string(), "number out of range");

  write_file(dir / "truth.json", R"({"model": {"n_layers": 1e999}, "edges": []})");
  CHECK_ERROR(io::read_ground_truth(graph, dir / "truth.json"), (dir / "truth.json").string(), "number out of range");

  write_file(dir / "vocab.json", R"({"a": 0, "b": 1e999})");
  write_file(dir / "merges.txt", "#version: 0.2\n");
  CHECK_ERROR(text::ByteLevelBpeTokenizer::from_files(dir / "vocab.json", dir / "merges.txt"), (dir / "vocab.json").string(),
              "number out of range");
}

TEST_CASE("parsers: a directory where a file is expected is a named error, not basic_filebuf::underflow") {
  TempDir dir;
  const fs::path folder = dir / "folder";
  fs::create_directories(folder);
  const Graph graph(GraphShape{1, 1, false, false});
  CHECK_ERROR(io::read_scores_json(folder), folder.string(), "is a directory, not a regular file");
  CHECK_ERROR(io::read_circuit_json(folder), folder.string(), "is a directory, not a regular file");
  CHECK_ERROR(io::read_ground_truth(graph, folder), folder.string(), "is a directory, not a regular file");
  CHECK_ERROR(read_task(folder, 10, 8), folder.string(), "is a directory, not a regular file");
  CHECK_ERROR(io::read_json_file(folder), folder.string(), "is a directory, not a regular file");
  CHECK_ERROR(text::ByteLevelBpeTokenizer::from_files(folder, folder), folder.string(), "is a directory");

  // A model directory whose config.json is a directory.
  const fs::path model = dir / "model";
  fs::create_directories(model / "config.json");
  fs::copy_file(fixtures / "gpt2-tiny" / "model.safetensors", model / "model.safetensors");
  CHECK_ERROR(io::load_checkpoint<float>(model), (model / "config.json").string(), "is a directory, not a regular file");
}

TEST_CASE("checkpoint: n_layer is checked against the tensors present before the layer list is allocated") {
  TempDir dir;
  for (const std::string n_layer : {"2000000", "2000000000"}) {
    const std::string last = "h." + std::to_string(std::stoull(n_layer) - 1) + ".ln_1.weight";
    write_file(dir / "config.json",
               R"({"n_layer": )" + n_layer + R"(, "n_head": 1, "n_embd": 1, "n_positions": 1, "vocab_size": 1})");
    write_file(dir / "model.safetensors",
               safetensors_bytes(R"({")" + last + R"(": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", "abcd"));
    const auto start = std::chrono::steady_clock::now();
    CHECK_ERROR(io::load_checkpoint<float>(dir.path), "n_layer = " + n_layer, "the file holds only 1 tensors");
    // Before the fix, 2e6 layers cost 1.9 GB and seconds; 2e9 threw std::bad_alloc.
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 0.5);
  }
}

TEST_CASE("tensor store: each fault of a sharded checkpoint is one error naming the file") {
  TempDir dir;
  const std::string index_name = "model.safetensors.index.json";
  const std::string shard1 = "model-00001-of-00003.safetensors", shard2 = "model-00002-of-00003.safetensors",
                    shard3 = "model-00003-of-00003.safetensors";
  int copies = 0;
  // A fresh copy of hf-llama-sharded, changed by edit(weight_map, copy) before its index is written back.
  auto copy = [&](auto edit) {
    const fs::path to = dir / ("copy" + std::to_string(copies++));
    fs::copy(fixtures / "hf-llama-sharded", to);
    nlohmann::json index = io::read_json_file(to / index_name);
    edit(index["weight_map"], to);
    write_file(to / index_name, index.dump(2));
    return to;
  };
  auto unchanged = [](nlohmann::json&, const fs::path&) {};
  auto open = [](const fs::path& d) { return io::TensorStore::open(d); };

  // Neither layout; a directory of PyTorch pickles gets the hint to re-save it.
  const fs::path empty = dir / "empty";
  fs::create_directories(empty);
  CHECK_ERROR(open(empty), (empty / "model.safetensors").string(), "does not exist", index_name);
  write_file(empty / "pytorch_model.bin", "");
  CHECK_ERROR(open(empty), "pytorch_model.bin", "safe_serialization=True");
  CHECK_ERROR(open(dir / "nowhere"), "nowhere", "not a directory");

  // A malformed index.
  const fs::path bad = copy(unchanged);
  const std::string where = (bad / index_name).string();
  auto open_index = [&](const std::string& text) {
    write_file(bad / index_name, text);
    return open(bad);
  };
  CHECK_ERROR(open_index(R"({"weight_map": {)"), where, "not valid JSON");
  CHECK_ERROR(open_index(std::string("{\"weight_map\": {}}\0junk", 23)), where, "not valid JSON", "NUL");
  CHECK_ERROR(open_index("[]"), where, "expected a JSON object");
  CHECK_ERROR(open_index(R"({"metadata": {"total_size": 4}})"), where, "missing key \"weight_map\"");
  CHECK_ERROR(open_index(R"({"weight_map": ["model.norm.weight"]})"), where, "\"weight_map\" must be an object", "array");
  CHECK_ERROR(open_index(R"({"weight_map": {}})"), where, "lists no tensors");
  CHECK_ERROR(open_index(R"({"weight_map": {"model.norm.weight": 3}})"), where, "tensor 'model.norm.weight'", "maps to 3");
  CHECK_ERROR(open_index(R"({"weight_map": {"a": "x.safetensors", "a": "y.safetensors"}})"), where, "duplicate key \"a\"");

  // Shard names that leave the directory, even to a real shard.
  for (const std::string& shard : std::vector<std::string>{"../" + bad.filename().string() + "/" + shard3, (bad / shard3).string(),
                                                        "sub/" + shard3, "sub\\" + shard3, "..", ""}) {
    CAPTURE(shard);
    CHECK_ERROR(open_index(nlohmann::json{{"weight_map", {{"model.norm.weight", shard}}}}.dump()), where,
                "tensor 'model.norm.weight'", "not a plain file name");
  }

  // A missing shard file: named, with a tensor the index puts in it.
  const fs::path missing = copy(unchanged);
  fs::remove(missing / shard2);
  CHECK_ERROR(open(missing), (missing / shard2).string(), "shard file does not exist",
              "tensor 'model.layers.0.input_layernorm.weight'");

  // A broken shard: SafetensorsFile's own checks, naming the shard.
  const fs::path truncated = copy([&](nlohmann::json&, const fs::path& to) {
    write_file(to / shard2, read_file(to / shard2).substr(0, 20));
  });
  CHECK_ERROR(open(truncated), (truncated / shard2).string(), "truncated");

  // The index and the shards disagree.
  const fs::path extra = copy([&](nlohmann::json& map, const fs::path&) { map["model.extra.weight"] = shard1; });
  CHECK_ERROR(open(extra), (extra / index_name).string(), "tensor 'model.extra.weight'", "'" + shard1 + "'", "does not hold it");
  const fs::path unlisted = copy([](nlohmann::json& map, const fs::path&) { map.erase("model.norm.weight"); });
  CHECK_ERROR(open(unlisted), (unlisted / shard3).string(), "holds tensor 'model.norm.weight'", index_name, "does not list");
  const fs::path moved = copy([&](nlohmann::json& map, const fs::path&) { map["model.norm.weight"] = shard1; });
  CHECK_ERROR(open(moved), (moved / index_name).string(), "tensor 'model.norm.weight'", "in shard '" + shard3 + "'",
              "puts it in shard '" + shard1 + "'");

  // Overlapping shards: shard 3 rewritten to hold shard 1's embedding as well.
  const fs::path overlap = copy([&](nlohmann::json&, const fs::path& to) {
    const io::SafetensorsFile first = io::SafetensorsFile::open(to / shard1), third = io::SafetensorsFile::open(to / shard3);
    std::vector<io::NamedTensor> tensors;
    for (const std::string& name : third.names()) tensors.push_back({name, third.info(name).shape, third.read<float>(name)});
    const std::string embedding = "model.embed_tokens.weight";
    tensors.push_back({embedding, first.info(embedding).shape, first.read<float>(embedding)});
    io::write_safetensors(to / shard3, tensors);
  });
  CHECK_ERROR(open(overlap), (overlap / index_name).string(), "tensor 'model.embed_tokens.weight'", "stored twice",
              "'" + shard1 + "'", "'" + shard3 + "'");

  // With both layouts present the single file is read, as transformers does.
  const fs::path both = copy(unchanged);
  fs::copy_file(fixtures / "hf-llama" / "model.safetensors", both / "model.safetensors");
  CHECK(open(both).path() == both / "model.safetensors");
  CHECK(open(both).file_of("model.norm.weight") == (both / "model.safetensors").string());
}

TEST_CASE("attribution: a model whose logits overflow is refused for every method, not written as null") {
  TempDir dir;
  // gpt2-tiny with ln_f.weight = 3e38: finite weights, infinite float32 logits.
  const io::SafetensorsFile file = io::SafetensorsFile::open(fixtures / "gpt2-tiny" / "model.safetensors");
  std::vector<io::NamedTensor> tensors;
  for (const std::string& name : file.names()) {
    io::NamedTensor t{name, file.info(name).shape, file.read<float>(name)};
    if (name.ends_with("ln_f.weight")) std::fill(t.values.begin(), t.values.end(), 3e38f);
    tensors.push_back(std::move(t));
  }
  io::write_safetensors(dir / "model.safetensors", tensors);
  fs::copy_file(fixtures / "gpt2-tiny" / "config.json", dir / "config.json");
  const auto checkpoint = io::load_checkpoint<float>(dir.path);
  const Task task = read_task(fixtures / "gpt2-tiny" / "task.jsonl", checkpoint.config.vocab_size, checkpoint.config.n_positions);
  with_architecture(checkpoint.config, [&]<class Arch>() {
    const Model<Arch, float> model(checkpoint.config, checkpoint.weights);
    const auto ptask = make_patching_task(model, task);
    const BuiltinMetric metric{MetricKind::LogitDiff};
    CHECK_ERROR(attribute(model, ptask, metric, Eap{}), "metric is not finite");
    CHECK_ERROR(attribute(model, ptask, metric, EapIg{2}), "metric is not finite");
    CHECK_ERROR(attribute(model, ptask, metric, CleanCorrupted{}), "metric is not finite");
    CHECK_ERROR(attribute(model, ptask, metric, ExactPatching{}), "metric is not finite");
  });

  // The scores writer refuses a non-finite metric too, whoever computed it.
  const Graph graph(GraphShape{1, 1, false, false});
  io::ScoresMeta meta{"eap", "logit_diff", std::numeric_limits<double>::infinity(), 0.0};
  CHECK_ERROR(io::scores_to_json(graph, std::vector<double>(graph.n_edges(), 0.0), meta), "clean_metric is not finite");
}

TEST_CASE("atomic outputs: a failing output leaves no file behind and keeps the old contents") {
  TempDir dir;
  write_file(dir / "a.json", "old");
  {
    io::OutputSet outputs;
    outputs.stage(dir / "a.json", "new");
    outputs.stage(dir / "b.svg", "<svg/>");
    CHECK_ERROR(outputs.stage(dir / "no" / "such" / "c.dot", "digraph {}"), "c.dot", "does not exist");
  }  // destroyed without commit: the staged temporaries go
  CHECK(read_file(dir / "a.json") == "old");
  CHECK(listing(dir.path) == std::vector<std::string>{"a.json"});

  {
    io::OutputSet outputs;
    outputs.stage(dir / "a.json", "new");
    outputs.stage(dir / "b.svg", "<svg/>");
    CHECK(listing(dir.path).size() == 3);  // a.json and the two staged files, hidden temporaries beside it
    CHECK(read_file(outputs.staged(dir / "b.svg")) == "<svg/>");
    outputs.commit();
  }
  CHECK(read_file(dir / "a.json") == "new");
  CHECK(read_file(dir / "b.svg") == "<svg/>");
  CHECK(listing(dir.path) == std::vector<std::string>{"a.json", "b.svg"});

  io::write_file_atomically(dir / "a.json", "newer");
  CHECK(read_file(dir / "a.json") == "newer");
  CHECK(listing(dir.path) == std::vector<std::string>{"a.json", "b.svg"});

  CHECK_ERROR(io::check_writable(dir / "missing" / "x.json"), "x.json", "does not exist");
  CHECK_ERROR(io::check_writable(dir / "a.json" / "x.json"), "is not a folder");
  CHECK_ERROR(io::check_writable(dir.path), "it is a folder");
  CHECK_ERROR(io::create_output_folder(dir / "a.json"), "a.json", "cannot create the output folder");

  // Library writers go through the same path: a failed write leaves nothing.
  io::LinePlot plot;
  plot.series.push_back({"s", {0, 1}, {0, 1}, "", false, true});
  CHECK_ERROR(io::write_line_plot(dir / "no" / "plot.svg", plot), "plot.svg", "does not exist");
  CHECK_FALSE(fs::exists(dir / "no"));
}

TEST_CASE_TEMPLATE("gemm: the same bits for 1, 2 and 3 threads, transposed or not", T, float, double) {
  // Big enough for gemm's block grid (3 x 3 blocks; with 176 rows, 6 column blocks) and
  // gemm_nt_long_inner's K-chunks.
  const std::size_t M = 300, short_M = 176, N = 2100, K = 70, long_K = 3 * (std::size_t{1} << 15) + 5;
  std::mt19937 rng(7);
  std::normal_distribution<double> normal;
  auto random = [&](std::size_t n) {
    std::vector<T> v(n);
    for (T& x : v) x = T(normal(rng));
    return v;
  };
  const std::vector<T> A = random(M * K), B = random(K * N), L = random(4 * long_K), R = random(5 * long_K);
  const int threads_before = num_threads();
  std::vector<std::vector<T>> results;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    std::vector<T> out;
    for (std::size_t m : {M, short_M})
      for (Trans ta : {Trans::No, Trans::Yes})
        for (Trans tb : {Trans::No, Trans::Yes}) {
          std::vector<T> C(m * N, T(1));
          gemm<T>(ta, tb, m, N, K, T(0.5), A.data(), ta == Trans::No ? K : m, B.data(), tb == Trans::No ? N : K, T(1), C.data(), N);
          out.insert(out.end(), C.begin(), C.end());
        }
    std::vector<T> S(4 * 5);
    gemm_nt_long_inner<T>(4, 5, long_K, L.data(), R.data(), S.data());
    out.insert(out.end(), S.begin(), S.end());
    results.push_back(std::move(out));
  }
  set_num_threads(threads_before);
  CHECK(std::memcmp(results[0].data(), results[1].data(), results[0].size() * sizeof(T)) == 0);
  CHECK(std::memcmp(results[0].data(), results[2].data(), results[0].size() * sizeof(T)) == 0);
}

TEST_CASE("reductions: the same bits wherever the buffer lies") {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  std::vector<float> values(771);
  for (float& x : values) x = normal(rng);
  std::vector<float> buffer(values.size() + 16);
  std::vector<float> sums;
  for (std::size_t offset = 0; offset < 16; ++offset) {  // every alignment of a 64-byte packet
    std::copy(values.begin(), values.end(), buffer.begin() + static_cast<std::ptrdiff_t>(offset));
    sums.push_back(cpu::sum_any_alignment(buffer.data() + offset, values.size()));
  }
  for (float s : sums) CHECK(std::memcmp(&s, &sums[0], sizeof s) == 0);
}

TEST_CASE("fuzz regressions: every committed input ends in success or a circuitry::Error") {
  const fs::path root = fs::path(CIRCUITRY_SOURCE_DIR) / "tests" / "fuzz" / "regressions";
  std::size_t replayed = 0;
  for (const auto& harness : fuzz::harnesses()) {
    const fs::path folder = root / harness.name;
    if (!fs::is_directory(folder)) continue;
    for (const auto& entry : fs::directory_iterator(folder)) {
      const std::string bytes = read_file(entry.path());
      INFO("input: " << entry.path().string());
      try {
        harness.run(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
      } catch (const Error&) {  // the library's own error is the expected outcome for bad input
      }
      ++replayed;
    }
  }
  MESSAGE("replayed " << replayed << " fuzz regression inputs");
}
