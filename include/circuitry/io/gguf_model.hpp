#pragma once
// Models from llama.cpp's GGUF files (DESIGN.md section 3): the config from the metadata
// ({arch}.block_count, ...), the tensors by llama.cpp's names (blk.{l}.attn_q.weight, ...) through
// the same table-driven loader as the Hugging Face families (io/parameter_table.hpp). The
// architectures read are
//   llama (Llama, Mistral and others converted as llama), qwen2, qwen3   RMSNorm, rotary, SwiGLU
//   gemma2, gemma3                                                          Gemma (read_gguf_gemma)
//   gpt2                                                                    LayerNorm, learned positions
// GGUF matrices are stored as PyTorch's [out, in] (shape() turns ggml's ne around), so the table
// transposes them as it does Hugging Face's Linear weights; GPT-2's Conv1D weights were
// transposed to [out, in] by llama.cpp's converter and are transposed back here.
//
// llama.cpp runs `llama` models with interleaved rotary (pairs (2i, 2i+1) of a head), Hugging
// Face with half-split rotary (pairs (i, i + d/2)); its converter (convert_hf_to_gguf.py,
// LlamaModel.permute) reorders the rows of each head of q and k from HF's order
// [half][i] to [i][half]. transformers' GGUF loader undoes that; so does GgufModelSource here.
// qwen2, qwen3, gemma2 and gemma3 run half-split in llama.cpp as well ("NEOX" rope) and are
// stored unpermuted. llama.cpp's converter stores Gemma's norm gains as 1 + w, as circuitry keeps them.
// Rope scaling: linear from the metadata, llama3's as the rope_freqs tensor (read_gguf_rope_scaling).
#include <cmath>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "circuitry/core/error.hpp"
#include "circuitry/io/checkpoint.hpp"
#include "circuitry/io/gguf_file.hpp"
#include "circuitry/io/parameter_table.hpp"
#include "circuitry/ops/rope_scaling.hpp"

namespace circuitry::io {

/// The GGUF architectures (general.architecture) circuitry reads.
inline bool is_gguf_architecture(const std::string& arch) {
  return arch == "llama" || arch == "qwen2" || arch == "qwen3" || arch == "gemma2" || arch == "gemma3" || arch == "gpt2";
}

/// Rope scaling as llama.cpp reads it (llama-model.cpp, load_hparams; ggml_rope_ext): {arch}.rope.
/// scaling.type (absent means "linear") with the factor {arch}.rope.scaling.factor (or the older
/// rope.scale_linear; absent or 0 means 1) dividing every frequency, "none" ignoring the factor;
/// and the tensor rope_freqs.weight, one frequency divisor per rotated pair, in which
/// convert_hf_to_gguf.py stores llama3's scaling (Llama 3.1, 3.2). Another type is an Error.
inline ops::RopeScaling read_gguf_rope_scaling(const GgufFile& file, const std::string& p, std::size_t d_head) {
  const std::string where = file.path().string();
  ops::RopeScaling scaling;
  const std::string type = file.has(p + "rope.scaling.type") ? file.string_value(p + "rope.scaling.type") : "linear";
  if (type != "none" && type != "linear")
    throw Error(where + ": " + p + "rope.scaling.type is \"" + type +
                "\"; circuitry implements rope scaling \"none\" and \"linear\" (and llama3's rope_freqs tensor) only");
  const std::string factor_key = file.has(p + "rope.scaling.factor") ? p + "rope.scaling.factor" : p + "rope.scale_linear";
  const double factor = file.has(factor_key) ? file.number_value(factor_key) : 0.0;
  if (!(factor >= 0) || !std::isfinite(factor)) throw Error(where + ": " + factor_key + " must be a non-negative number");
  if (type == "linear" && factor != 0 && factor != 1) {
    scaling.type = "linear";
    scaling.factor = factor;
  }
  if (file.contains("rope_freqs.weight")) {
    const std::vector<std::size_t>& shape = file.info("rope_freqs.weight").shape;
    if (shape != std::vector<std::size_t>{d_head / 2})
      throw Error(where + ": tensor 'rope_freqs.weight' must hold one frequency divisor per rotated pair (" +
                  std::to_string(d_head / 2) + ")");
    scaling.pair_divisors = file.read<double>("rope_freqs.weight");
    for (double divisor : scaling.pair_divisors)
      if (!(divisor > 0) || !std::isfinite(divisor))
        throw Error(where + ": tensor 'rope_freqs.weight' holds " + std::to_string(divisor) + "; frequency divisors must be positive");
  }
  return scaling;
}

/// Gemma 2 and 3's settings as llama.cpp reads them (llama-model.cpp, load_hparams), where
/// transformers' GGUF loader takes its config classes' defaults instead: the score scale
/// 1 / sqrt(key_length) (1 / sqrt(embedding_length / head_count) for the 27B models, 46 and 62
/// layers), the soft caps from the metadata (Gemma 2: 50 and 30 when absent; Gemma 3: no attention
/// cap, a final cap only when present), the sliding window (Gemma 2: 4096 when absent; Gemma 3: none
/// when absent or 0) on every other layer from the first (Gemma 2) or on all but every sixth
/// (Gemma 3), whose local layers turn at base 10000 without scaling.
inline void read_gguf_gemma(const GgufFile& file, const std::string& arch, ModelConfig& c) {
  const std::string p = arch + ".", where = file.path().string();
  const bool gemma3 = arch == "gemma3";
  auto optional = [&](const std::string& key, double fallback) {
    if (!file.has(p + key)) return fallback;
    const double v = file.number_value(p + key);
    if (!(v >= 0) || !std::isfinite(v)) throw Error(where + ": " + p + key + " must be a non-negative number");
    return v;
  };
  c.act_fn = "gelu_new";
  c.post_attention_norm = c.post_mlp_norm = true;
  c.embedding_multiplier = std::sqrt(double(c.n_embd));
  const bool is_27b = c.n_layer == (gemma3 ? 62u : 46u);
  c.attn_scale = 1.0 / std::sqrt(double(is_27b ? c.n_embd / c.n_head : c.d_head()));
  c.attn_softcap = gemma3 ? 0.0 : optional("attn_logit_softcapping", 50.0);
  c.final_softcap = optional("final_logit_softcapping", gemma3 ? 0.0 : 30.0);
  c.sliding_window = gemma3 ? 0 : 4096;  // an integer up to 2^31 - 1 where the file has one
  if (file.has(p + "attention.sliding_window")) c.sliding_window = file.index_value(p + "attention.sliding_window");
  const std::size_t pattern = gemma3 ? 6 : 2;
  c.sliding_layers.assign(c.n_layer, false);
  for (std::size_t l = 0; l < c.n_layer; ++l) c.sliding_layers[l] = l % pattern < pattern - 1;
  if (gemma3 && c.sliding_window) c.rotary_base_local = 10000.0;
}

/// The model settings of a GGUF file's metadata; an Error naming the file and the key for one
/// circuitry cannot run (another architecture, rope scaling other than linear and llama3's, a
/// sliding window, experts).
inline ModelConfig read_gguf_config(const GgufFile& file) {
  const std::string where = file.path().string();
  const std::string arch = file.string_value("general.architecture");
  if (arch == "gemma")
    throw Error(where + ": general.architecture is \"gemma\" (Gemma 1); circuitry reads Gemma 2 and 3 (gemma2, gemma3) from GGUF files");
  if (!is_gguf_architecture(arch))
    throw Error(where + ": general.architecture is \"" + arch +
                "\", which circuitry does not read (it reads llama, qwen2, qwen3, gemma2, gemma3 and gpt2)");
  const bool gemma = arch == "gemma2" || arch == "gemma3";
  const std::string p = arch + ".";
  ModelConfig c;
  c.n_layer = file.size_value(p + "block_count");
  c.n_embd = file.size_value(p + "embedding_length");
  c.n_inner = file.size_value(p + "feed_forward_length");
  c.n_head = file.size_value(p + "attention.head_count");
  c.n_positions = file.size_value(p + "context_length");
  if (!file.contains("token_embd.weight") || file.info("token_embd.weight").shape.size() != 2)
    throw Error(where + ": missing tensor 'token_embd.weight' (the [vocab, embedding_length] token embedding)");
  c.vocab_size = file.info("token_embd.weight").shape[0];
  c.tie_word_embeddings = !file.contains("output.weight");
  for (const std::string& key : {p + "expert_count", p + "expert_used_count"})
    if (file.has(key) && file.number_value(key) > 0)
      throw Error(where + ": " + key + " is set: mixture-of-experts layers are not components of circuitry");
  if (arch == "gpt2") {
    c.layer_norm_epsilon = file.number_value(p + "attention.layer_norm_epsilon");
    if (c.n_embd % c.n_head != 0)
      throw Error(where + ": " + p + "embedding_length " + std::to_string(c.n_embd) + " is not divisible by " + p +
                  "attention.head_count " + std::to_string(c.n_head));
    return c;  // ModelConfig's defaults are GPT-2's: LayerNorms, gelu_new, learned positions, biases
  }
  if (file.has(p + "attention.head_count_kv")) {
    const std::size_t kv = file.size_value(p + "attention.head_count_kv");
    if (c.n_head % kv != 0)
      throw Error(where + ": " + p + "attention.head_count " + std::to_string(c.n_head) + " is not divisible by " + p +
                  "attention.head_count_kv " + std::to_string(kv));
    c.n_kv_head = kv == c.n_head ? 0 : kv;
  }
  if (file.has(p + "attention.key_length")) {
    c.head_dim = file.size_value(p + "attention.key_length");
    if (file.has(p + "attention.value_length") && file.size_value(p + "attention.value_length") != c.head_dim)
      throw Error(where + ": " + p + "attention.value_length differs from key_length; circuitry's heads have one width");
  } else if (c.n_embd % c.n_head != 0) {
    throw Error(where + ": " + p + "embedding_length is not divisible by attention.head_count (and there is no attention.key_length)");
  }
  if (c.head_dim == c.n_embd / c.n_head && c.n_embd % c.n_head == 0) c.head_dim = 0;
  if (file.has(p + "rope.dimension_count") && file.size_value(p + "rope.dimension_count") != c.d_head())
    throw Error(where + ": " + p + "rope.dimension_count is " + std::to_string(file.size_value(p + "rope.dimension_count")) +
                ", not the head width " + std::to_string(c.d_head()) + "; circuitry's GGUF reader rotates whole heads only");
  c.rope_scaling = read_gguf_rope_scaling(file, p, c.d_head());
  if (!gemma && file.has(p + "attention.sliding_window") && file.number_value(p + "attention.sliding_window") < double(c.n_positions))
    throw Error(where + ": " + p + "attention.sliding_window is shorter than the context; circuitry implements full causal attention only");
  c.layer_norm_epsilon = file.number_value(p + "attention.layer_norm_rms_epsilon");
  c.rotary_base = file.has(p + "rope.freq_base") ? file.number_value(p + "rope.freq_base") : 10000.0;  // llama.cpp's default
  if (!(c.layer_norm_epsilon > 0) || !(c.rotary_base > 0))
    throw Error(where + ": the RMS norm epsilon and rope.freq_base must be positive");
  c.normalization = "RMS";
  c.positional = "rotary";
  c.act_fn = "silu";
  c.gated_mlp = true;
  c.qk_norm = arch == "qwen3" || arch == "gemma3";
  c.attn_qkv_bias = arch == "qwen2" || file.contains("blk.0.attn_q.bias");
  c.attn_out_bias = file.contains("blk.0.attn_output.bias");
  c.mlp_bias = file.contains("blk.0.ffn_up.bias");
  if (gemma) read_gguf_gemma(file, arch, c);
  return c;
}

/// llama.cpp's tensor names and how each fills a parameter: every matrix transposed from
/// [out, in]; q, k, v (gate, up) into the parts of W_QKV (W_gate_in).
inline TensorTable gguf_tensor_table(const std::string& arch) {
  using enum TensorLayout;
  TensorTable t;
  if (arch == "gpt2") {
    t.rules = {
        {"token_embd.weight", "embed.W_E"},
        {"position_embd.weight", "pos_embed.W_pos"},
        {"blk.{l}.attn_norm.weight", "blocks.{l}.ln1.w"},
        {"blk.{l}.attn_norm.bias", "blocks.{l}.ln1.b"},
        {"blk.{l}.attn_qkv.weight", "blocks.{l}.attn.W_QKV", transposed},
        {"blk.{l}.attn_qkv.bias", "blocks.{l}.attn.b_QKV"},
        {"blk.{l}.attn_output.weight", "blocks.{l}.attn.W_O", transposed},
        {"blk.{l}.attn_output.bias", "blocks.{l}.attn.b_O"},
        {"blk.{l}.ffn_norm.weight", "blocks.{l}.ln2.w"},
        {"blk.{l}.ffn_norm.bias", "blocks.{l}.ln2.b"},
        {"blk.{l}.ffn_up.weight", "blocks.{l}.mlp.W_in", transposed},
        {"blk.{l}.ffn_up.bias", "blocks.{l}.mlp.b_in"},
        {"blk.{l}.ffn_down.weight", "blocks.{l}.mlp.W_out", transposed},
        {"blk.{l}.ffn_down.bias", "blocks.{l}.mlp.b_out"},
        {"output_norm.weight", "ln_final.w"},
        {"output_norm.bias", "ln_final.b"},
        {"output.weight", "unembed.W_U"},
    };
  } else {
    t.rules = {
        {"token_embd.weight", "embed.W_E"},
        {"blk.{l}.attn_norm.weight", "blocks.{l}.ln1.w"},
        {"blk.{l}.attn_q.weight", "blocks.{l}.attn.W_QKV", transposed, 0},
        {"blk.{l}.attn_k.weight", "blocks.{l}.attn.W_QKV", transposed, 1},
        {"blk.{l}.attn_v.weight", "blocks.{l}.attn.W_QKV", transposed, 2},
        {"blk.{l}.attn_q.bias", "blocks.{l}.attn.b_QKV", same, 0},
        {"blk.{l}.attn_k.bias", "blocks.{l}.attn.b_QKV", same, 1},
        {"blk.{l}.attn_v.bias", "blocks.{l}.attn.b_QKV", same, 2},
        {"blk.{l}.attn_q_norm.weight", "blocks.{l}.attn.q_norm.w"},
        {"blk.{l}.attn_k_norm.weight", "blocks.{l}.attn.k_norm.w"},
        {"blk.{l}.attn_output.weight", "blocks.{l}.attn.W_O", transposed},
        {"blk.{l}.attn_output.bias", "blocks.{l}.attn.b_O"},
        {"blk.{l}.post_attention_norm.weight", "blocks.{l}.ln1_post.w"},
        {"blk.{l}.ffn_norm.weight", "blocks.{l}.ln2.w"},
        {"blk.{l}.ffn_gate.weight", "blocks.{l}.mlp.W_gate_in", transposed, 0},
        {"blk.{l}.ffn_up.weight", "blocks.{l}.mlp.W_gate_in", transposed, 1},
        {"blk.{l}.ffn_gate.bias", "blocks.{l}.mlp.b_gate_in", same, 0},
        {"blk.{l}.ffn_up.bias", "blocks.{l}.mlp.b_gate_in", same, 1},
        {"blk.{l}.ffn_down.weight", "blocks.{l}.mlp.W_out", transposed},
        {"blk.{l}.ffn_down.bias", "blocks.{l}.mlp.b_out"},
        {"blk.{l}.post_ffw_norm.weight", "blocks.{l}.ln2_post.w"},
        {"output_norm.weight", "ln_final.w"},
        {"output.weight", "unembed.W_U"},
    };
  }
  t.ignored = [](const std::string& name) { return name == "rope_freqs.weight"; };  // read by read_gguf_rope_scaling
  t.config_words = "the file's metadata";
  t.shapes_from = "the file's metadata";
  return t;
}

/// A GgufFile as the loader's TensorSource, with llama's q and k rows put back in Hugging Face's
/// order (see the top of this file) when `unpermute` is set.
class GgufModelSource {
 public:
  GgufModelSource(const GgufFile& file, const ModelConfig& c, bool unpermute)
      : file_(file), n_head_(c.n_head), n_kv_head_(c.kv_heads()), d_head_(c.d_head()), unpermute_(unpermute) {}

  bool contains(std::string_view name) const { return file_.contains(name); }
  const GgufTensorInfo& info(std::string_view name) const { return file_.info(name); }
  std::string file_of(std::string_view name) const { return file_.file_of(name); }
  std::vector<std::string> names() const { return file_.names(); }

  template <class T>
  void read_into(std::string_view name, std::span<T> out) const {
    file_.read_into(name, out);
    if (!unpermute_ || !name.starts_with("blk.")) return;
    const bool q = name.ends_with(".attn_q.weight") || name.ends_with(".attn_q.bias");
    const bool k = name.ends_with(".attn_k.weight") || name.ends_with(".attn_k.bias");
    if (q || k) unpermute_rows(out, q ? n_head_ : n_kv_head_, d_head_);
  }

 private:
  /// Undoes permute(): stored row h d + 2 i + half of a head of d rows is Hugging Face's row
  /// h d + half (d / 2) + i (rows of `width` values; a bias has rows of one value).
  template <class T>
  static void unpermute_rows(std::span<T> values, std::size_t heads, std::size_t d) {
    const std::size_t width = values.size() / (heads * d), pairs = d / 2;
    std::vector<T> head(d * width);
    for (std::size_t h = 0; h < heads; ++h) {
      T* block = values.data() + h * d * width;
      std::copy(block, block + d * width, head.begin());
      for (std::size_t i = 0; i < pairs; ++i)
        for (std::size_t half = 0; half < 2; ++half)
          std::copy_n(head.data() + (2 * i + half) * width, width, block + (half * pairs + i) * width);
    }
  }

  const GgufFile& file_;
  std::size_t n_head_, n_kv_head_, d_head_;
  bool unpermute_;
};

/// Loads a GGUF model file: its config from the metadata, its weights dequantized tensor by
/// tensor into circuitry's storage (the file itself stays mapped, not copied).
template <class T>
Checkpoint<T> load_gguf(const std::filesystem::path& path) {
  const GgufFile file = GgufFile::open(path);
  Checkpoint<T> checkpoint;
  checkpoint.config = read_gguf_config(file);
  const ModelConfig& c = checkpoint.config;
  const std::string arch = file.string_value("general.architecture");
  // A block_count larger than the file's layers is refused before anything is allocated per layer.
  const std::string last_layer = "blk." + std::to_string(c.n_layer - 1) + ".attn_norm.weight";
  if (!file.contains(last_layer))
    throw Error(path.string() + ": missing tensor '" + last_layer + "': " + arch + ".block_count is " + std::to_string(c.n_layer) +
                " but the file holds " + std::to_string(file.size()) + " tensors");
  const GgufModelSource source(file, c, arch == "llama");
  checkpoint.weights = load_parameters<T>(source, path.string(), declared_parameters(c), gguf_tensor_table(arch), c);
  return checkpoint;
}

}  // namespace circuitry::io
