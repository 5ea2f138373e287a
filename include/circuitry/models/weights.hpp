#pragma once
// A model's parameters: tensors by their TransformerLens names (embed.W_E, blocks.0.attn.W_QKV,
// blocks.0.ln1.w, unembed.W_U, ...), in the layouts the components declare
// (models/components/, Architecture::parameters). Matrices are stored for y = x W + b (the
// Conv1D layout), the unembedding as [d_vocab_out, d_model] so that a tied one is W_E itself.
// Which names a model has is decided by its components and config, not by this container: a
// component with a new parameter needs nothing here. The same container holds gradients.
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include <Eigen/Core>
#include <xtensor/xarray.hpp>

#include "circuitry/core/error.hpp"
#include "circuitry/models/config.hpp"

namespace circuitry {

/// A parameter tensor: N-d, row-major, aligned like Eigen's packets (64 bytes with AVX-512), so
/// vectorised loops over weights take the same path on every run and results are bit-reproducible.
template <class T>
using ParamArray = xt::xarray<T, xt::layout_type::row_major, Eigen::aligned_allocator<T>>;

/// "blocks.3.attn.W_O": the name of a layer's parameter.
inline std::string layer_param(std::size_t layer, std::string_view name) {
  return "blocks." + std::to_string(layer) + "." + std::string(name);
}

template <class T>
class Weights {
 public:
  using map_type = std::map<std::string, ParamArray<T>, std::less<>>;

  /// The tensor of that name, made empty if there is none yet (loaders, random initialisation).
  ParamArray<T>& operator[](const std::string& name) { return tensors_[name]; }
  /// The tensor of that name; an error naming it when the model has none.
  const ParamArray<T>& at(std::string_view name) const {
    const auto found = tensors_.find(name);
    if (found == tensors_.end()) throw Error("the model has no parameter named '" + std::string(name) + "'");
    return found->second;
  }
  ParamArray<T>& at(std::string_view name) { return const_cast<ParamArray<T>&>(std::as_const(*this).at(name)); }
  const ParamArray<T>* find(std::string_view name) const {
    const auto found = tensors_.find(name);
    return found == tensors_.end() ? nullptr : &found->second;
  }
  bool contains(std::string_view name) const { return tensors_.find(name) != tensors_.end(); }
  /// The unembedding as stored, [d_vocab_out, d_model] (logits = x W_U^T): unembed.W_U, or the
  /// token embedding when they are tied.
  const ParamArray<T>& unembed() const { return contains("unembed.W_U") ? at("unembed.W_U") : at("embed.W_E"); }

  std::size_t size() const { return tensors_.size(); }
  /// (name, tensor) in name order.
  auto begin() const { return tensors_.begin(); }
  auto end() const { return tensors_.end(); }
  auto begin() { return tensors_.begin(); }
  auto end() { return tensors_.end(); }
  bool operator==(const Weights&) const = default;

 private:
  map_type tensors_;
};

}  // namespace circuitry
