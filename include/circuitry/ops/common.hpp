#pragma once
// Shared by the op files (one op per file, as in ggml): the op context, whose backend supplies
// every kernel an op runs (`typename Ctx::backend`), and the test for whether an op records.
#include <cstddef>
#include <type_traits>

#include "circuitry/ops/context.hpp"

namespace circuitry::ops {

/// True when any of the vars takes part in differentiation.
template <class T, class... V>
bool any_grad(const Var<T>& first, const V&... rest) {
  return first.needs_grad() || (rest.needs_grad() || ...);
}

}  // namespace circuitry::ops
