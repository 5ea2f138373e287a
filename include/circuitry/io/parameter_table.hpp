#pragma once
// One loader for every checkpoint family, driven by a table. The components declare the
// parameters a model has (ParamDecl: TransformerLens name, shape, kind, the parts of a fused
// one); a family's table says which checkpoint tensor fills each of them, and how:
//   {"layers.{l}.self_attn.q_proj.weight", "blocks.{l}.attn.W_QKV", transposed, part 0}
// reads Llama's q_proj [H d_head, D] into the q columns of W_QKV [D, (H + 2 KV) d_head]. The
// loader checks every tensor's shape against what the declaration implies, refuses non-finite
// values, requires every declared parameter to be filled whole and every tensor of the file to
// be used (buffers aside), so a config.json from another model cannot load silently. Adding a
// component with a new parameter means declaring it in the component and adding its rows to
// the tables of the families that have it.
//
// The tensors come from a TensorSource (io/tensor_store.hpp: one safetensors file or its shards).
#include <algorithm>
#include <concepts>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "circuitry/core/error.hpp"
#include "circuitry/backends/cpu/transpose.hpp"
#include "circuitry/io/safetensors.hpp"
#include "circuitry/models/architectures.hpp"
#include "circuitry/models/config.hpp"
#include "circuitry/models/weights.hpp"

namespace circuitry::io {

/// How a checkpoint tensor's values become a parameter (or one part of a fused one), whose
/// target block has shape [..., W] (W: the part's width of the last axis).
enum class TensorLayout {
  same,              // the same values in the same order and shape
  transposed,        // a 2-D [W, R] tensor is the block [R, W] (PyTorch's Linear [out, in] -> y = x W)
  heads_split,       // the block's first axis H d_head stored as [H, d_head] (TransformerLens W_O, b_Q)
  heads_to_columns,  // TransformerLens W_Q [H, D, d_head] -> the columns [D, H d_head]
  neox_qkv,          // GPT-NeoX's fused query_key_value, grouped per head ([H, q|k|v, d_head] rows or values) -> q | k | v
  plus_one,          // the same values plus one (Gemma's norm gains w, applied as 1 + w)
  ones,              // no tensor: the parameter is all ones (TransformerLens LNPre's folded norm gains)
  zeros,             // no tensor: all zeros (LNPre's norm biases)
};

struct TensorRule {
  std::string checkpoint;  // the tensor's name without the family's root prefix; "{l}" stands for the layer
  std::string parameter;   // the parameter it fills; "{l}" likewise
  TensorLayout layout = TensorLayout::same;
  int part = -1;           // which part of a fused parameter (ParamDecl::parts), -1 for the whole
};

struct TensorTable {
  /// Prefixes a checkpoint may put before every name ("transformer.", "model."); names are
  /// looked up with each root and bare.
  std::vector<std::string> roots;
  std::vector<TensorRule> rules;
  /// Tensors of a file that no parameter uses and that may be there (attention-mask buffers).
  std::function<bool(const std::string&)> ignored = [](const std::string&) { return false; };
  /// Said in the messages about missing and unexpected tensors: "config.json (n_layer = 2, ...)".
  std::string config_words = "config.json";
  /// Said in the messages about a tensor of the wrong shape: what the expected shape comes from.
  std::string shapes_from = "config.json";
};

/// Where a loader's tensors come from: names, each tensor's shape, the file that holds it (for
/// messages), and its values converted to the run's scalar.
template <class S>
concept TensorSource = requires(const S& source, std::string_view name, std::span<float> out) {
  { source.contains(name) } -> std::convertible_to<bool>;
  { source.info(name).shape } -> std::convertible_to<std::vector<std::size_t>>;
  { source.file_of(name) } -> std::convertible_to<std::string>;
  { source.names() } -> std::convertible_to<std::vector<std::string>>;
  source.template read_into<float>(name, out);
};

/// What a model of this config declares (the parameters of its architecture, in forward order).
inline std::vector<ParamDecl> declared_parameters(const ModelConfig& c) {
  return with_architecture(c, [&]<class Arch>() { return Arch::parameter_list(c); });
}

namespace detail {

inline std::string with_layer(const std::string& pattern, std::size_t l) {
  std::string s = pattern;
  if (const auto at = s.find("{l}"); at != std::string::npos) s.replace(at, 3, std::to_string(l));
  return s;
}

/// The rules with "{l}" filled in, in table order, the layer rules expanded at the place of the
/// first one as layer 0's rules, layer 1's, ...: (checkpoint name, parameter name, rule).
struct BoundRule {
  std::string checkpoint, parameter;
  const TensorRule* rule;
};
inline std::vector<BoundRule> bind_rules(const TensorTable& table, std::size_t n_layers) {
  std::vector<BoundRule> bound;
  bool layers_done = false;
  for (const TensorRule& r : table.rules) {
    if (r.parameter.find("{l}") == std::string::npos) {
      bound.push_back({r.checkpoint, r.parameter, &r});
      continue;
    }
    if (layers_done) continue;
    layers_done = true;
    for (std::size_t l = 0; l < n_layers; ++l)
      for (const TensorRule& lr : table.rules)
        if (lr.parameter.find("{l}") != std::string::npos)
          bound.push_back({with_layer(lr.checkpoint, l), with_layer(lr.parameter, l), &lr});
  }
  return bound;
}

/// The shape a checkpoint tensor must have to fill a block of shape `block` in `layout`.
inline std::vector<std::size_t> stored_shape(TensorLayout layout, const std::vector<std::size_t>& block, std::size_t dh) {
  switch (layout) {
    case TensorLayout::transposed: return {block.at(1), block.at(0)};
    case TensorLayout::heads_split: {
      std::vector<std::size_t> s{block[0] / dh, dh};
      s.insert(s.end(), block.begin() + 1, block.end());
      return s;
    }
    case TensorLayout::heads_to_columns: return {block.at(1) / dh, block.at(0), dh};
    case TensorLayout::neox_qkv: return block.size() == 2 ? std::vector<std::size_t>{block[1], block[0]} : block;
    default: return block;
  }
}

/// Writes `values` (a tensor stored in `layout`) into the block of `param` [rows, cols] whose last
/// axis starts at column `col0` and is `width` wide.
template <class T>
void place(TensorLayout layout, std::span<const T> values, ParamArray<T>& param, std::size_t col0, std::size_t width,
           std::size_t dh) {
  const std::size_t cols = param.shape().back(), rows = param.size() / cols;
  T* dst = param.data();
  switch (layout) {
    case TensorLayout::transposed:  // values [width, rows] -> dst[:, col0 .. col0 + width)
      transpose(values.data(), width, rows, rows, dst + col0, cols);
      return;
    case TensorLayout::heads_to_columns: {  // values [H, rows, dh]: head h's [rows, dh] into columns col0 + h dh
      const std::size_t H = width / dh;
      for (std::size_t h = 0; h < H; ++h)
        for (std::size_t r = 0; r < rows; ++r)
          std::copy_n(values.data() + (h * rows + r) * dh, dh, dst + r * cols + col0 + h * dh);
      return;
    }
    case TensorLayout::neox_qkv: {  // head h's q, k, v at rows (or values) (3h + j) dh .. + dh  ->  column j A + h dh
      const std::size_t A = cols / 3, H = A / dh;
      for (std::size_t h = 0; h < H; ++h)
        for (std::size_t j = 0; j < 3; ++j) {
          const std::size_t from = (h * 3 + j) * dh, col = j * A + h * dh;
          if (rows == 1) std::copy_n(values.data() + from, dh, dst + col);
          else transpose(values.data() + from * rows, dh, rows, rows, dst + col, cols);
        }
      return;
    }
    case TensorLayout::plus_one:
      for (std::size_t r = 0; r < rows; ++r)
        std::transform(values.data() + r * width, values.data() + (r + 1) * width, dst + r * cols + col0, [](T v) { return T(1) + v; });
      return;
    default:  // same, heads_split: the block's values in row-major order
      for (std::size_t r = 0; r < rows; ++r) std::copy_n(values.data() + r * width, width, dst + r * cols + col0);
  }
}

}  // namespace detail

/// Fills every parameter of `declared` from `store` by `table`. `where` names the checkpoint in
/// messages about the whole of it.
template <class T, TensorSource Store>
Weights<T> load_parameters(const Store& store, const std::string& where, const std::vector<ParamDecl>& declared,
                           const TensorTable& table, const ModelConfig& c) {
  std::map<std::string, const ParamDecl*, std::less<>> decl;
  for (const ParamDecl& d : declared) decl.emplace(d.name, &d);
  std::map<std::string, std::vector<bool>, std::less<>> filled;  // per parameter, per part
  std::set<std::string> used;
  Weights<T> weights;
  const std::size_t dh = c.d_head();

  for (const detail::BoundRule& b : detail::bind_rules(table, c.n_layer)) {
    const auto found = decl.find(b.parameter);
    if (found == decl.end()) continue;  // this model has no such parameter; a tensor for it is unexpected
    const ParamDecl& d = *found->second;
    const TensorRule& rule = *b.rule;
    ParamArray<T>& param = weights[d.name];
    if (!filled.contains(d.name)) param = ParamArray<T>::from_shape(d.shape);  // the first rule into it
    auto& done = filled[d.name];
    const std::size_t n_parts = d.parts.empty() ? 1 : d.parts.size();
    done.resize(n_parts, false);
    require(rule.part < static_cast<int>(n_parts), "loader table: " + d.name + " has no part " + std::to_string(rule.part));
    std::size_t col0 = 0, width = d.shape.back();
    if (rule.part >= 0 && !d.parts.empty()) {
      for (int j = 0; j < rule.part; ++j) col0 += d.parts[static_cast<std::size_t>(j)];
      width = d.parts[static_cast<std::size_t>(rule.part)];
    }
    std::vector<std::size_t> block = d.shape;
    block.back() = width;
    for (std::size_t j = 0; j < n_parts; ++j)
      if (rule.part < 0 || j == static_cast<std::size_t>(rule.part)) done[j] = true;

    if (rule.layout == TensorLayout::ones || rule.layout == TensorLayout::zeros) {
      std::fill(param.begin(), param.end(), rule.layout == TensorLayout::ones ? T(1) : T(0));
      continue;
    }
    std::string stored;
    for (const std::string& root : table.roots)
      if (stored.empty() && store.contains(root + b.checkpoint)) stored = root + b.checkpoint;
    if (stored.empty() && store.contains(b.checkpoint)) stored = b.checkpoint;
    if (stored.empty()) {
      std::string rooted;
      for (const std::string& root : table.roots) rooted += (rooted.empty() ? " (or '" : "', '") + root + b.checkpoint;
      throw Error(where + ": missing tensor '" + b.checkpoint + "'" + (rooted.empty() ? "" : rooted + "')") + ", which " +
                  table.config_words + " requires");
    }
    const std::vector<std::size_t> expected = detail::stored_shape(rule.layout, block, dh);
    const auto& info = store.info(stored);
    if (info.shape != expected)
      throw Error(store.file_of(stored) + ": tensor '" + stored + "' has shape " + detail::format_shape(info.shape) +
                  " but " + table.shapes_from + " implies " + detail::format_shape(expected));
    // A whole parameter stored as it is kept is read straight into it (no second copy of an embedding).
    const bool direct = (rule.layout == TensorLayout::same || rule.layout == TensorLayout::heads_split) && width == d.shape.back();
    std::vector<T> staging(direct ? 0 : param.size() / d.shape.back() * width);
    const std::span<T> values = direct ? std::span<T>(param.data(), param.size()) : std::span<T>(staging);
    store.template read_into<T>(stored, values);
    for (std::size_t i = 0; i < values.size(); ++i)  // a NaN weight would only show up later, as NaN scores
      if (!std::isfinite(values[i]))
        throw Error(store.file_of(stored) + ": tensor '" + stored + "' holds a non-finite value (" +
                    std::to_string(double(values[i])) + ") at flat index " + std::to_string(i));
    if (!direct) detail::place(rule.layout, std::span<const T>(values), param, col0, width, dh);
    used.insert(stored);
  }
  for (const ParamDecl& d : declared) {
    const auto f = filled.find(d.name);
    require(f != filled.end() && std::all_of(f->second.begin(), f->second.end(), [](bool b) { return b; }),
            where + ": no tensor of this checkpoint family fills the parameter " + d.name + " (the loader's table has no row for it)");
  }
  for (const std::string& name : store.names())
    if (!used.contains(name) && !table.ignored(name))
      throw Error(store.file_of(name) + ": unexpected tensor '" + name + "' that " + table.config_words +
                  " has no place for; does config.json belong to this model?");
  return weights;
}

/// The tensors a table's `same` rules read, from `weights` (writing a checkpoint of that family):
/// the checkpoint names without root, in the table's order. Every declared parameter must have
/// its declared shape.
template <class T>
std::vector<NamedTensor> parameters_to_tensors(const Weights<T>& weights, const std::vector<ParamDecl>& declared,
                                               const TensorTable& table, std::size_t n_layers, const std::string& where) {
  std::map<std::string, const ParamDecl*, std::less<>> decl;
  for (const ParamDecl& d : declared) decl.emplace(d.name, &d);
  std::vector<NamedTensor> tensors;
  for (const detail::BoundRule& b : detail::bind_rules(table, n_layers)) {
    const auto found = decl.find(b.parameter);
    if (found == decl.end()) continue;
    require(b.rule->layout == TensorLayout::same && b.rule->part < 0, where + "the table cannot write " + b.parameter);
    const ParamArray<T>* t = weights.find(b.parameter);
    const std::vector<std::size_t> actual = t ? std::vector<std::size_t>(t->shape().begin(), t->shape().end())
                                              : std::vector<std::size_t>{};
    require(actual == found->second->shape, where + "parameter '" + b.checkpoint + "' has shape " + detail::format_shape(actual) +
                                                " but the config implies " + detail::format_shape(found->second->shape));
    tensors.push_back({b.checkpoint, actual, std::vector<float>(t->begin(), t->end())});
  }
  return tensors;
}

}  // namespace circuitry::io
