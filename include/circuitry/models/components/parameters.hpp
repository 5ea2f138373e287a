#pragma once
// How a component declares its parameters: it calls declare(name, shape, kind, parts) for each
// one it owns, with the name TransformerLens gives it (blocks.0.attn.W_QKV is circuitry's fused
// form of W_Q | W_K | W_V). The model's weights are a map from these names to tensors
// (models/weights.hpp); loaders (io/parameter_table.hpp), the shape check, random initialisation,
// the tape variables and the optimiser all go through these declarations, so a new component
// brings its parameters with it.
#include <cstddef>
#include <string>
#include <vector>

#include "circuitry/core/tape.hpp"

namespace circuitry {

/// What a parameter is, for initialisation and weight decay.
enum class ParamKind {
  matrix,     // a projection: N(0, stddev) at initialisation, decayed by AdamW
  embedding,  // a lookup table: N(0, stddev), not decayed
  bias,       // zero at initialisation, not decayed
  norm_gain,  // one at initialisation, not decayed
  norm_bias,  // zero at initialisation, not decayed
};

using ParamShape = std::vector<std::size_t>;

/// One parameter as a component declares it. A fused parameter lists its parts: the widths of
/// the blocks its last axis is made of (W_QKV: q | k | v, H d_head, KV d_head, KV d_head), which
/// a checkpoint may store as separate tensors. Empty: one block.
struct ParamDecl {
  std::string name;  // blocks.0.attn.W_QKV
  ParamShape shape;
  ParamKind kind = ParamKind::matrix;
  std::vector<std::size_t> parts;
};

/// "[768, 2304]"
inline std::string shape_string(const ParamShape& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

/// A constant tape variable viewing a parameter tensor (no copy, no gradient).
template <class X, class T = typename X::value_type>
Var<T> constant_var(const X& x) {
  Shape s;
  s.rank = x.dimension();
  for (std::size_t i = 0; i < s.rank; ++i) s[i] = x.shape()[i];
  return Var<T>{const_cast<T*>(x.data()), s, nullptr};
}

/// A bias that a checkpoint may not have (Llama has no b_O): a pointer to it, or nullptr when
/// the model has none (an absent parameter reads as a Var without storage), as the ops take
/// optional biases.
template <class T>
const Var<T>* optional_param(const Var<T>& v) {
  return v.value ? &v : nullptr;
}

}  // namespace circuitry
