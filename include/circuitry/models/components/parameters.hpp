#pragma once
// How a component declares its parameters: it calls visit(name, tensor, shape, kind) for each
// one it owns, with the name TransformerLens gives it (blocks.0.attn.W_QKV is circuitry's fused
// form of W_Q | W_K | W_V). Loaders, the shape check, random initialisation and the optimiser
// all go through these declarations, so a new component brings its parameters with it.
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

/// "[768, 2304]"
inline std::string shape_string(const ParamShape& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

/// A bias that a checkpoint may not have (Llama has no b_O): a pointer to it, or nullptr when
/// the slot is empty, as the ops take optional biases.
template <class V>
const V* optional_param(const V& v) {
  if constexpr (requires { v.numel(); }) return v.numel() ? &v : nullptr;
  else return v.size() ? &v : nullptr;
}

/// A constant tape variable viewing a parameter tensor (no copy, no gradient).
template <class X, class T = typename X::value_type>
Var<T> constant_var(const X& x) {
  Shape s;
  s.rank = x.dimension();
  for (std::size_t i = 0; i < s.rank; ++i) s[i] = x.shape()[i];
  return Var<T>{const_cast<T*>(x.data()), s, nullptr};
}

}  // namespace circuitry
