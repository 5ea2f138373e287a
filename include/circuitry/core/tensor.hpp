#pragma once
// Tensor views over arena memory. Activations live in an Arena (one allocation reused
// across runs, no allocation per op); a TensorView names a block of it with a shape and
// strides. Owning containers at the API boundary (weights, results) are xtensor's, and
// GEMMs go through Eigen maps (backends/cpu/gemm.hpp).
#include <array>
#include <cstddef>
#include <initializer_list>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "circuitry/core/error.hpp"

namespace circuitry {

inline constexpr std::size_t kMaxRank = 4;

/// A std::vector aligned like Eigen's packets: vectorised loops over it take the same path on
/// every run, so results do not depend on where the allocator put it.
template <class T>
using AlignedVector = std::vector<T, Eigen::aligned_allocator<T>>;

/// A shape of rank <= 4, e.g. {batch, pos, d_model}.
struct Shape {
  std::array<std::size_t, kMaxRank> dims{};
  std::size_t rank = 0;

  Shape() = default;
  Shape(std::initializer_list<std::size_t> d) {
    require(d.size() <= kMaxRank, "tensor rank above 4 is not supported");
    for (std::size_t x : d) dims[rank++] = x;
  }
  std::size_t operator[](std::size_t i) const { return dims[i]; }
  std::size_t& operator[](std::size_t i) { return dims[i]; }
  std::size_t numel() const {
    std::size_t n = 1;
    for (std::size_t i = 0; i < rank; ++i) n *= dims[i];
    return n;
  }
  /// Product of all dimensions but the last: the number of rows of a row-major matrix view.
  std::size_t rows() const { return rank == 0 ? 1 : numel() / dims[rank - 1]; }
  std::size_t cols() const { return rank == 0 ? 1 : dims[rank - 1]; }
  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.rank != b.rank) return false;
    for (std::size_t i = 0; i < a.rank; ++i)
      if (a.dims[i] != b.dims[i]) return false;
    return true;
  }
  std::string str() const {
    std::string s = "[";
    for (std::size_t i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + "]";
  }
};

/// A strided view: what hooks see (q, k and v are strided slices of one [B, P, 3D] buffer).
template <class T>
struct TensorView {
  T* data = nullptr;
  Shape shape;
  std::array<std::size_t, kMaxRank> strides{};

  static TensorView contiguous(T* data, Shape shape) {
    TensorView v{data, shape, {}};
    std::size_t s = 1;
    for (std::size_t i = shape.rank; i-- > 0;) {
      v.strides[i] = s;
      s *= shape[i];
    }
    return v;
  }
  template <class... I>
  T& operator()(I... idx) const {
    static_assert(sizeof...(I) <= kMaxRank);
    const std::size_t ix[] = {static_cast<std::size_t>(idx)...};
    std::size_t off = 0;
    for (std::size_t i = 0; i < sizeof...(I); ++i) off += ix[i] * strides[i];
    return data[off];
  }
  std::size_t numel() const { return shape.numel(); }
};

}  // namespace circuitry
