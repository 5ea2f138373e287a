#pragma once
// NumPy's .npy format (version 1.0), for arrays too large to write as text: `circuitry forward
// --format npy` writes its logits (32 x 50,257 floats) this way in milliseconds, where the
// shortest-round-trip text takes a tenth of a second. Layout (numpy.lib.format): the magic
// "\x93NUMPY", version bytes 1 0, a little-endian uint16 header length, then an ASCII Python
// dict `{'descr': '<f4', 'fortran_order': False, 'shape': (32, 50257), }` padded with spaces
// and ended by '\n' so that the data starts at a multiple of 64 bytes; then the values, C order,
// little-endian. Read it with `numpy.load(path)`.
#include <bit>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "circuitry/core/error.hpp"

namespace circuitry::io {

/// The .npy header (magic, version, length, dict, padding) for an array of T with `shape`.
template <class T>
std::string npy_header(const std::vector<std::size_t>& shape) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "npy: float or double");
  static_assert(std::endian::native == std::endian::little, "npy: the values are written as they lie in memory");
  std::string dict = std::string("{'descr': '<f") + (sizeof(T) == 4 ? "4" : "8") + "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < shape.size(); ++i) dict += (i > 0 ? ", " : "") + std::to_string(shape[i]);
  dict += shape.size() == 1 ? ",), }" : "), }";  // Python's tuples: (32, 50257), (5,), ()
  const std::size_t prefix = 10;  // magic (6) + version (2) + header length (2)
  const std::size_t padded = (prefix + dict.size() + 1 + 63) / 64 * 64;  // +1 for the final '\n'
  require(padded - prefix <= 0xFFFF, "npy: a shape of " + std::to_string(shape.size()) + " dimensions does not fit a version 1.0 header");
  dict.append(padded - prefix - dict.size() - 1, ' ');
  dict += '\n';
  const auto length = static_cast<std::uint16_t>(dict.size());
  std::string header = "\x93NUMPY";
  header += char(1);
  header += char(0);
  header += char(length & 0xFF);
  header += char(length >> 8);
  return header + dict;
}

/// Writes `data` (C order, the product of `shape` values) as a .npy file's bytes.
template <class T>
void write_npy(std::ostream& out, const T* data, const std::vector<std::size_t>& shape) {
  std::size_t n = 1;
  for (std::size_t d : shape) n *= d;
  const std::string header = npy_header<T>(shape);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n * sizeof(T)));
}

}  // namespace circuitry::io
