// Loading a sharded checkpoint of about 1.2 billion parameters: Llama 3.2 1B's shape (hidden
// 2048, 16 layers, 32 heads, 8 key/value heads, MLP 8192, vocabulary 128256, tied embeddings)
// in BF16, in shards of at most 1 GB with model.safetensors.index.json, as save_pretrained
// writes it, with its config.json. Default: io::load_model_directory<float>, the loader every
// command uses (tensors rearranged into circuitry's layout); --tensors: TensorStore::open, then
// every tensor read into its own float32 buffer.
// The checkpoint (2.5 GB of pseudo-random weights) is written into DIR first unless it is already
// there; delete DIR afterwards. Prints the seconds, the parameters and the peak resident memory,
// which should be the float32 weights plus a small constant: tensor bytes are decoded from a
// memory-mapped window of the file, never copied whole.
// Usage: bench_load DIR [--tensors]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <circuitry/io/model_directory.hpp>
#include <circuitry/io/tensor_store.hpp>

#include "bench_common.hpp"

namespace {

namespace fs = std::filesystem;

struct Shape {
  std::string name;
  std::vector<std::size_t> shape;
  std::size_t elements() const {
    std::size_t n = 1;
    for (std::size_t extent : shape) n *= extent;
    return n;
  }
};

/// Llama 3.2 1B's tensors, in module order (the order save_pretrained fills shards in).
std::vector<Shape> llama_1b_tensors() {
  const std::size_t hidden = 2048, layers = 16, heads = 32, kv_heads = 8, mlp = 8192, vocab = 128256;
  const std::size_t head_dim = hidden / heads;
  std::vector<Shape> tensors = {{"model.embed_tokens.weight", {vocab, hidden}}};
  for (std::size_t l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    tensors.push_back({p + "self_attn.q_proj.weight", {heads * head_dim, hidden}});
    tensors.push_back({p + "self_attn.k_proj.weight", {kv_heads * head_dim, hidden}});
    tensors.push_back({p + "self_attn.v_proj.weight", {kv_heads * head_dim, hidden}});
    tensors.push_back({p + "self_attn.o_proj.weight", {hidden, heads * head_dim}});
    tensors.push_back({p + "mlp.gate_proj.weight", {mlp, hidden}});
    tensors.push_back({p + "mlp.up_proj.weight", {mlp, hidden}});
    tensors.push_back({p + "mlp.down_proj.weight", {hidden, mlp}});
    tensors.push_back({p + "input_layernorm.weight", {hidden}});
    tensors.push_back({p + "post_attention_layernorm.weight", {hidden}});
  }
  tensors.push_back({"model.norm.weight", {hidden}});
  return tensors;
}

/// Writes one BF16 shard holding `tensors`, streaming small pseudo-random values through a
/// 1 MiB buffer (so that writing does not raise this process's peak memory).
void write_shard(const fs::path& path, const std::vector<Shape>& tensors, std::uint64_t& random) {
  nlohmann::ordered_json header = {{"__metadata__", {{"format", "pt"}}}};
  std::size_t offset = 0;
  for (const Shape& t : tensors) {
    header[t.name] = {{"dtype", "BF16"}, {"shape", t.shape}, {"data_offsets", {offset, offset + 2 * t.elements()}}};
    offset += 2 * t.elements();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary);
  for (std::size_t i = 0; i < 8; ++i) out.put(static_cast<char>((text.size() >> (8 * i)) & 0xFF));
  out << text;
  std::vector<std::uint16_t> buffer(std::size_t(1) << 19);  // 1 MiB
  for (std::size_t left = offset / 2; left > 0;) {
    const std::size_t n = std::min(left, buffer.size());
    for (std::size_t i = 0; i < n; ++i) {
      random ^= random << 13, random ^= random >> 7, random ^= random << 17;  // xorshift64
      // sign, exponent 2^-7 .. 2^-4, 7 mantissa bits: finite and small, like trained weights
      buffer[i] = static_cast<std::uint16_t>(((random >> 63) << 15) | ((120 + ((random >> 8) & 3)) << 7) | (random & 0x7F));
    }
    out.write(reinterpret_cast<const char*>(buffer.data()), static_cast<std::streamsize>(2 * n));
    left -= n;
  }
  if (!out) throw circuitry::Error(path.string() + ": could not write the shard (disk full?)");
}

/// The checkpoint in shards of at most 1 GB, then its index (written last: an interrupted run
/// leaves no index and is redone).
void write_checkpoint(const fs::path& dir) {
  const std::size_t max_shard_bytes = 1'000'000'000;
  std::vector<std::vector<Shape>> shards(1);
  std::size_t bytes = 0;
  for (Shape& t : llama_1b_tensors()) {
    if (bytes + 2 * t.elements() > max_shard_bytes && !shards.back().empty()) shards.emplace_back(), bytes = 0;
    bytes += 2 * t.elements();
    shards.back().push_back(std::move(t));
  }
  fs::create_directories(dir);
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  std::uint64_t random = 0x9E3779B97F4A7C15ull;
  std::size_t total = 0;
  for (std::size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    write_shard(dir / name, shards[s], random);
    for (const Shape& t : shards[s]) weight_map[t.name] = name, total += 2 * t.elements();
  }
  std::ofstream(dir / "config.json") << nlohmann::ordered_json{
      {"model_type", "llama"}, {"num_hidden_layers", 16}, {"num_attention_heads", 32}, {"num_key_value_heads", 8},
      {"hidden_size", 2048}, {"intermediate_size", 8192}, {"max_position_embeddings", 131072}, {"vocab_size", 128256},
      {"rms_norm_eps", 1e-5}, {"rope_theta", 500000.0}, {"hidden_act", "silu"}, {"tie_word_embeddings", true}}.dump(2);
  std::ofstream(dir / "model.safetensors.index.json")
      << nlohmann::ordered_json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace circuitry;
  const bool tensors_only = argc == 3 && std::string(argv[2]) == "--tensors";
  if (argc != 2 && !tensors_only) {
    std::fprintf(stderr, "usage: bench_load DIR [--tensors]   (writes a 2.5 GB checkpoint into DIR unless it is there)\n");
    return 2;
  }
  const fs::path dir = argv[1];
  if (!fs::exists(dir / "model.safetensors.index.json")) {
    std::printf("writing the checkpoint into %s ...\n", dir.c_str());
    write_checkpoint(dir);
  }

  const auto start = std::chrono::steady_clock::now();
  std::size_t parameters = 0, n_tensors = 0;
  std::vector<std::unique_ptr<float[]>> weights;
  std::optional<io::Checkpoint<float>> checkpoint;
  if (tensors_only) {
    const io::TensorStore store = io::TensorStore::open(dir);
    for (const std::string& name : store.names()) {
      const std::size_t n = store.info(name).num_elements();
      weights.push_back(std::make_unique_for_overwrite<float[]>(n));
      store.read_into(name, std::span<float>(weights.back().get(), n));
      parameters += n;
    }
    n_tensors = store.size();
  } else {
    checkpoint = io::load_model_directory<float>(dir);
    for (const auto& [name, tensor] : checkpoint->weights) parameters += tensor.size(), ++n_tensors;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double weights_mb = double(parameters) * sizeof(float) / (1024.0 * 1024.0);
  std::printf("%s: %zu tensors, %.3f B parameters, BF16 -> float32, one thread: %.2f s (%.2f GB of BF16 read per second)\n",
              tensors_only ? "TensorStore reads" : "load_model_directory", n_tensors, double(parameters) / 1e9, seconds,
              2.0 * double(parameters) / 1e9 / seconds);
  std::printf("peak resident %.0f MB, of which the float32 weights are %.0f MB\n", bench::peak_mb(), weights_mb);
  std::printf("seconds=%.3f parameters=%zu peak_mb=%.0f weights_mb=%.0f\n", seconds, parameters, bench::peak_mb(), weights_mb);
}
