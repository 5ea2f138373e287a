#pragma once
// Embedding gather: y[i] = table[ids[i]]. Backward scatters dy rows back into d table.
#include <vector>

#include "circuitry/ops/common.hpp"

namespace circuitry::ops {

/// table [V, D], ids (any shape S, values in [0, V)) -> [S..., D].
template <class Ctx, class T = typename Ctx::scalar>
Var<T> embedding(const Ctx& ctx, const Var<T>& table, const std::vector<int>& ids, Shape ids_shape) {
  using Kernels = typename Ctx::backend;
  require(table.shape.rank == 2, "embedding: table must be [vocab, d]");
  require(ids.size() == ids_shape.numel(), "embedding: ids do not match their shape " + ids_shape.str());
  const std::size_t V = table.shape[0], D = table.shape[1];
  Shape ys = ids_shape;
  require(ys.rank < kMaxRank, "embedding: ids rank too high");
  ys.dims[ys.rank++] = D;
  for (int id : ids)
    require(id >= 0 && static_cast<std::size_t>(id) < V,
            "token id " + std::to_string(id) + " is out of range for a vocabulary of " + std::to_string(V));
  Var<T> y = ctx.output(ys, table.needs_grad());
  Kernels::gather_rows(ids.size(), D, ids.data(), table.value, y.value);
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, table, y, ids, D] { Kernels::scatter_add_rows(ids.size(), D, ids.data(), ctx.grad(y), ctx.grad(table)); });
  }
  return y;
}

}  // namespace circuitry::ops
