#pragma once
// Safetensors files (DESIGN.md section 3): reading tensors from a file whose header
// safetensors_header.hpp has validated, and writing F32 files.
//
// Tensor data is read through a read-only memory map of the file, a window of at most 16 MiB
// at a time, and converted straight from the mapped pages into the caller's storage: loading a
// model costs the converted weights and nothing proportional to the file. Where mapping is not
// available or fails, the same bytes are streamed through a 1 MiB buffer instead (file_range.hpp).
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuitry/core/error.hpp"
#include "circuitry/io/atomic_file.hpp"
#include "circuitry/io/file_range.hpp"
#include "circuitry/io/safetensors_header.hpp"

namespace circuitry::io {

static_assert(std::endian::native == std::endian::little,
              "circuitry reads and writes little-endian safetensors data in place: a little-endian host is needed");

namespace detail {

/// out[i] = to_value(i-th Stored element of bytes), loading through memcpy because the data
/// section has no alignment guarantee.
template <class Stored, class T, class ToValue>
void decode(const unsigned char* bytes, std::span<T> out, ToValue to_value) {
  for (std::size_t i = 0; i < out.size(); ++i) {
    Stored stored;
    std::memcpy(&stored, bytes + i * sizeof(Stored), sizeof(Stored));
    out[i] = static_cast<T>(to_value(stored));
  }
}

}  // namespace detail

class SafetensorsFile {
 public:
  /// Opens and validates `path` (the checks of safetensors_header.hpp); reads no tensor data.
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  /// Tensor names in file order (by data offset).
  const std::vector<std::string>& names() const { return names_; }
  bool contains(std::string_view name) const { return tensors_.find(name) != tensors_.end(); }
  /// The header entry of `name`; an Error if there is no such tensor.
  const TensorInfo& info(std::string_view name) const;
  /// The "__metadata__" map (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  /// The tensor's values in row-major order, converted from F64, F32, F16 or BF16.
  template <class T>
    requires std::is_same_v<T, float> || std::is_same_v<T, double>
  std::vector<T> read(std::string_view name) const {
    std::vector<T> values(info(name).num_elements());
    read_into(name, std::span<T>(values));
    return values;
  }

  /// Like read(), into caller-owned storage of exactly num_elements() values.
  template <class T>
    requires std::is_same_v<T, float> || std::is_same_v<T, double>
  void read_into(std::string_view name, std::span<T> out) const;

 private:
  std::filesystem::path path_;
  std::uintmax_t file_size_ = 0;  // when validated: a later read checks that it has not changed
  std::uint64_t data_start_ = 0;  // 8 + header length
  std::vector<std::string> names_;
  std::map<std::string, TensorInfo, std::less<>> tensors_;
  std::map<std::string, std::string> metadata_;
};

/// IEEE half precision to float: exact for every value, including subnormals, infinities and NaN.
inline float f16_to_float(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1Fu;
  const std::uint32_t mantissa = bits & 0x3FFu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 0x1F) return std::bit_cast<float>(sign | 0x7F800000u | (mantissa << 13));  // inf or NaN
  return std::bit_cast<float>(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
}

/// bfloat16 is the top 16 bits of an IEEE float.
inline float bf16_to_float(std::uint16_t bits) { return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16); }

inline SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  SafetensorsHeader header = read_safetensors_header(path);
  SafetensorsFile file;
  file.path_ = path;
  file.file_size_ = header.file_size;
  file.data_start_ = header.data_start;
  file.metadata_ = std::move(header.metadata);
  for (auto& [name, info] : header.tensors) {
    file.names_.push_back(name);
    file.tensors_.emplace(name, std::move(info));
  }
  return file;
}

inline const TensorInfo& SafetensorsFile::info(std::string_view name) const {
  const auto found = tensors_.find(name);
  if (found == tensors_.end()) throw Error(path_.string() + ": no tensor named '" + std::string(name) + "'");
  return found->second;
}

template <class T>
  requires std::is_same_v<T, float> || std::is_same_v<T, double>
void SafetensorsFile::read_into(std::string_view name, std::span<T> out) const {
  const TensorInfo& tensor = info(name);
  const DType dtype = tensor.dtype;
  if (dtype != DType::F64 && dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
    throw Error(path_.string() + ": tensor '" + std::string(name) + "' has dtype " + std::string(dtype_name(dtype)) +
                ", which cannot be read as floating point (F64, F32, F16 or BF16 are needed)");
  if (out.size() != tensor.num_elements())
    throw Error(path_.string() + ": tensor '" + std::string(name) + "' has " + std::to_string(tensor.num_elements()) +
                " values but the destination holds " + std::to_string(out.size()));
  // Each piece of the tensor's bytes is converted into the next values of `out` as it arrives.
  const std::size_t element_bytes = detail::spec(dtype).bits / 8;
  std::size_t converted = 0;
  auto convert = [&](const unsigned char* bytes, std::size_t n) {
    const std::span<T> values = out.subspan(converted, n / element_bytes);
    auto identity = [](auto value) { return value; };
    switch (dtype) {
      case DType::F64: detail::decode<double>(bytes, values, identity); break;
      case DType::F32: detail::decode<float>(bytes, values, identity); break;
      case DType::F16: detail::decode<std::uint16_t>(bytes, values, f16_to_float); break;
      default: detail::decode<std::uint16_t>(bytes, values, bf16_to_float); break;  // BF16, checked above
    }
    converted += values.size();
  };
  detail::read_file_range(path_, file_size_, data_start_ + tensor.begin, tensor.end - tensor.begin, element_bytes,
                          detail::ReadMethod::map,
                          path_.string() + ": could not read tensor '" + std::string(name) +
                              "' (was the file changed or truncated after it was opened?)",
                          convert);
}

/// A tensor to write: row-major values with their shape.
struct NamedTensor {
  std::string name;
  std::vector<std::size_t> shape;
  std::vector<float> values;
};

/// Writes `tensors` as F32 in the given order, like the reference serializer: the header is
/// padded with spaces to a multiple of 8 bytes so the data section starts aligned.
inline void write_safetensors(const std::filesystem::path& path, const std::vector<NamedTensor>& tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  const std::string where = path.string();
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::size_t offset = 0;
  for (const NamedTensor& tensor : tensors) {
    if (tensor.name == "__metadata__") throw Error(where + ": \"__metadata__\" is reserved and cannot name a tensor");
    if (header.contains(tensor.name)) throw Error(where + ": two tensors are named '" + tensor.name + "'");
    std::size_t count = 1;
    for (std::size_t extent : tensor.shape) count *= extent;
    if (count != tensor.values.size())
      throw Error(where + ": tensor '" + tensor.name + "' has shape " + detail::format_shape(tensor.shape) + " but " +
                  std::to_string(tensor.values.size()) + " values were given");
    const std::size_t bytes = count * sizeof(float);
    header[tensor.name] = {{"dtype", "F32"}, {"shape", tensor.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');

  write_file_atomically_with(path, [&](std::ostream& out) {
    std::array<char, 8> length_bytes{};
    for (std::size_t i = 0; i < 8; ++i) length_bytes[i] = static_cast<char>((header_text.size() >> (8 * i)) & 0xFF);
    out.write(length_bytes.data(), 8);
    out.write(header_text.data(), static_cast<std::streamsize>(header_text.size()));
    for (const NamedTensor& tensor : tensors)
      out.write(reinterpret_cast<const char*>(tensor.values.data()),
                static_cast<std::streamsize>(tensor.values.size() * sizeof(float)));
  });
}

}  // namespace circuitry::io
