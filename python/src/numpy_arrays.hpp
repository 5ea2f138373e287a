#pragma once
// NumPy arrays to and from the library's vectors. An array handed to Python owns the vector it
// views (no copy; NumPy arrays speak DLPack, so torch.from_dlpack takes them as they are).
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <circuitry/core/error.hpp>

namespace circuitry::python {

namespace nb = nanobind;

template <class T>
using NumpyArray = nb::ndarray<nb::numpy, T>;
template <class T>
using InputVector = nb::ndarray<const T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

template <class T>
NumpyArray<T> to_numpy(std::vector<T>&& values, const std::vector<std::size_t>& shape) {
  auto* owned = new std::vector<T>(std::move(values));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return NumpyArray<T>(owned->data(), shape.size(), shape.data(), owner);
}

template <class T>
NumpyArray<T> to_numpy(std::vector<T>&& values) {
  const std::size_t n = values.size();
  return to_numpy(std::move(values), {n});
}

/// A 1-d input of `expected` entries (scores, edge flags) as a vector, or an Error naming `what`.
template <class T>
std::vector<T> from_numpy(const InputVector<T>& a, std::size_t expected, const std::string& what) {
  require(a.shape(0) == expected, what + " has " + std::to_string(a.shape(0)) + " entries; the graph has " +
                                      std::to_string(expected) + " edges (one entry per edge, in graph order)");
  return std::vector<T>(a.data(), a.data() + a.shape(0));
}

}  // namespace circuitry::python
