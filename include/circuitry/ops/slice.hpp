#pragma once
// Slicing and concatenation along an axis, row gathers and per-row picks. Each views its
// tensor as [outer, axis, inner] and copies contiguous inner blocks.
#include <vector>

#include "circuitry/ops/common.hpp"

namespace circuitry::ops {

namespace detail {
struct AxisSplit {
  std::size_t outer = 1, dim = 1, inner = 1;
};
inline AxisSplit split_at(const Shape& s, std::size_t axis) {
  require(axis < s.rank, "axis " + std::to_string(axis) + " is out of range for shape " + s.str());
  AxisSplit a;
  for (std::size_t i = 0; i < axis; ++i) a.outer *= s[i];
  a.dim = s[axis];
  for (std::size_t i = axis + 1; i < s.rank; ++i) a.inner *= s[i];
  return a;
}
}  // namespace detail

/// x[..., begin:end, ...] along `axis`.
template <class Ctx, class T = typename Ctx::scalar>
Var<T> slice(const Ctx& ctx, const Var<T>& x, std::size_t axis, std::size_t begin, std::size_t end) {
  using Kernels = typename Ctx::backend;
  const auto a = detail::split_at(x.shape, axis);
  require(begin <= end && end <= a.dim, "slice: range [" + std::to_string(begin) + ", " + std::to_string(end) +
                                            ") is outside axis " + std::to_string(axis) + " of " + x.shape.str());
  Shape ys = x.shape;
  ys[axis] = end - begin;
  const std::size_t block = (end - begin) * a.inner;
  Var<T> y = ctx.output(ys, x.needs_grad());
  Kernels::copy_blocks(a.outer, block, x.value + begin * a.inner, a.dim * a.inner, y.value, block);
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, x, y, a, begin, block] {
        Kernels::add_blocks(a.outer, block, ctx.grad(y), block, ctx.grad(x) + begin * a.inner, a.dim * a.inner);
      });
  }
  return y;
}

/// Concatenation along `axis`; all other dimensions must agree.
template <class Ctx, class T = typename Ctx::scalar>
Var<T> concat(const Ctx& ctx, const std::vector<Var<T>>& xs, std::size_t axis) {
  using Kernels = typename Ctx::backend;
  require(!xs.empty(), "concat: no tensors given");
  Shape ys = xs[0].shape;
  ys[axis] = 0;
  bool diff = false;
  for (const auto& x : xs) {
    Shape s = x.shape;
    require(s.rank == ys.rank && axis < s.rank, "concat: tensors of different rank");
    s[axis] = 0;
    require(s == ys, "concat: shapes " + xs[0].shape.str() + " and " + x.shape.str() + " differ off axis " + std::to_string(axis));
    diff = diff || x.needs_grad();
  }
  for (const auto& x : xs) ys[axis] += x.shape[axis];
  const auto ya = detail::split_at(ys, axis);
  Var<T> y = ctx.output(ys, diff);
  std::size_t offset = 0;
  for (const auto& x : xs) {
    const auto a = detail::split_at(x.shape, axis);
    Kernels::copy_blocks(a.outer, a.dim * a.inner, x.value, a.dim * a.inner, y.value + offset * a.inner, ya.dim * a.inner);
    offset += a.dim;
  }
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, xs, y, ya, axis] {
        std::size_t off = 0;
        for (const auto& x : xs) {
          const auto a = detail::split_at(x.shape, axis);
          if (x.needs_grad())
            Kernels::add_blocks(a.outer, a.dim * a.inner, ctx.grad(y) + off * a.inner, ya.dim * a.inner, ctx.grad(x), a.dim * a.inner);
          off += a.dim;
        }
      });
  }
  return y;
}

/// Rows of x viewed as [N, D]: rows[i] picks row rows[i] -> [R, D].
template <class Ctx, class T = typename Ctx::scalar>
Var<T> gather_rows(const Ctx& ctx, const Var<T>& x, const std::vector<std::size_t>& rows) {
  using Kernels = typename Ctx::backend;
  const std::size_t D = x.shape.cols(), N = x.shape.rows();
  for (std::size_t r : rows) require(r < N, "gather_rows: row " + std::to_string(r) + " out of range");
  Var<T> y = ctx.output({rows.size(), D}, x.needs_grad());
  Kernels::gather_rows(rows.size(), D, rows.data(), x.value, y.value);
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, x, y, rows, D] { Kernels::scatter_add_rows(rows.size(), D, rows.data(), ctx.grad(y), ctx.grad(x)); });
  }
  return y;
}

/// y[r] = x[r, cols[r]] for x [R, V] -> [R].
template <class Ctx, class T = typename Ctx::scalar>
Var<T> pick(const Ctx& ctx, const Var<T>& x, const std::vector<int>& cols) {
  const std::size_t V = x.shape.cols(), R = x.shape.rows();
  require(cols.size() == R, "pick: need one column per row");
  for (int c : cols) require(c >= 0 && static_cast<std::size_t>(c) < V, "pick: column " + std::to_string(c) + " out of range");
  Var<T> y = ctx.output({R}, x.needs_grad());
  for (std::size_t r = 0; r < R; ++r) y.value[r] = x.value[r * V + static_cast<std::size_t>(cols[r])];
  if constexpr (Ctx::records) {
    if (y.needs_grad())
      ctx.on_backward([ctx, x, y, cols, V, R] {
        for (std::size_t r = 0; r < R; ++r) ctx.grad(x)[r * V + static_cast<std::size_t>(cols[r])] += ctx.grad(y)[r];
      });
  }
  return y;
}

}  // namespace circuitry::ops
