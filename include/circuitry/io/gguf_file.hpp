#pragma once
// A GGUF file (llama.cpp's single-file models): its metadata, and its tensors as a TensorSource
// (io/parameter_table.hpp). The header is validated once by read_gguf_header (gguf_header.hpp);
// tensor data is then read through a read-only memory map, 16 MiB at a time, whole blocks at a
// time, each block dequantized (gguf_quants.hpp) straight into the caller's storage: loading a
// model costs its float weights and nothing proportional to the file.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "circuitry/core/error.hpp"
#include "circuitry/io/file_range.hpp"
#include "circuitry/io/gguf_header.hpp"
#include "circuitry/io/gguf_quants.hpp"

namespace circuitry::io {

/// Whether `path` is a GGUF file: a regular file named *.gguf or starting with the magic "GGUF".
inline bool is_gguf_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  if (path.extension() == ".gguf") return true;
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::string_view(magic, 4) == "GGUF";
}

class GgufFile {
 public:
  /// Opens and validates `path` (gguf_header.hpp); reads no tensor data.
  static GgufFile open(const std::filesystem::path& path) {
    GgufFile file;
    file.path_ = path;
    file.header_ = read_gguf_header(path);
    for (std::size_t i = 0; i < file.header_.tensors.size(); ++i) file.index_.emplace(file.header_.tensors[i].first, i);
    return file;
  }

  const std::filesystem::path& path() const { return path_; }
  std::uint32_t version() const { return header_.version; }
  std::uint64_t alignment() const { return header_.alignment; }

  // Metadata. The typed accessors throw an Error naming the file and the key when it is absent
  // or of another type.
  const GgufValue* find(std::string_view key) const {
    const auto it = header_.metadata.find(key);
    return it == header_.metadata.end() ? nullptr : &it->second;
  }
  bool has(std::string_view key) const { return find(key) != nullptr; }
  const std::map<std::string, GgufValue, std::less<>>& metadata() const { return header_.metadata; }

  const std::string& string_value(std::string_view key) const {
    return value(key, GgufValueType::string, "a string").text;
  }
  /// An integer or floating-point value.
  double number_value(std::string_view key) const {
    const GgufValue& v = value(key, GgufValueType::array, "a number", true);
    if (v.type == GgufValueType::string || v.type == GgufValueType::boolean) throw wrong_type(key, v, "a number");
    return v.number;
  }
  /// A positive integer no larger than 2^31 - 1 (a size: layers, widths, token ids + 1).
  std::size_t size_value(std::string_view key) const {
    const GgufValue& v = value(key, GgufValueType::array, "an integer", true);
    if (!v.is_integer()) throw wrong_type(key, v, "an integer");
    if (v.number < 1 || v.number > double((1u << 31) - 1))
      throw Error(path_.string() + ": metadata '" + std::string(key) + "' is " + integer_text(v.number) +
                  "; a positive integer up to 2^31 - 1 is expected");
    return static_cast<std::size_t>(v.number);
  }
  /// A non-negative integer no larger than 2^31 - 1 (a token id).
  std::size_t index_value(std::string_view key) const {
    const GgufValue& v = value(key, GgufValueType::array, "an integer", true);
    if (!v.is_integer()) throw wrong_type(key, v, "an integer");
    if (v.number < 0 || v.number > double((1u << 31) - 1))
      throw Error(path_.string() + ": metadata '" + std::string(key) + "' is " + integer_text(v.number) +
                  "; an integer from 0 to 2^31 - 1 is expected");
    return static_cast<std::size_t>(v.number);
  }
  const std::vector<std::string>& string_array(std::string_view key) const {
    const GgufValue& v = value(key, GgufValueType::array, "an array of strings");
    if (v.element_type != GgufValueType::string) throw wrong_type(key, v, "an array of strings");
    return v.strings;
  }
  const std::vector<double>& number_array(std::string_view key) const {
    const GgufValue& v = value(key, GgufValueType::array, "an array of numbers");
    if (v.element_type == GgufValueType::string) throw wrong_type(key, v, "an array of numbers");
    return v.numbers;
  }

  // The TensorSource interface.
  /// Tensor names in file order.
  std::vector<std::string> names() const {
    std::vector<std::string> names;
    names.reserve(header_.tensors.size());
    for (const auto& t : header_.tensors) names.push_back(t.first);
    return names;
  }
  std::size_t size() const { return header_.tensors.size(); }
  bool contains(std::string_view name) const { return index_.find(name) != index_.end(); }
  const GgufTensorInfo& info(std::string_view name) const {
    const auto it = index_.find(name);
    if (it == index_.end()) throw Error(path_.string() + ": no tensor named '" + std::string(name) + "'");
    return header_.tensors[it->second].second;
  }
  std::string file_of(std::string_view) const { return path_.string(); }

  /// The tensor's values in row-major order (the shape of info(name)), dequantized to float as
  /// ggml does and converted to T.
  template <class T>
    requires std::is_same_v<T, float> || std::is_same_v<T, double>
  void read_into(std::string_view name, std::span<T> out) const;

  template <class T>
    requires std::is_same_v<T, float> || std::is_same_v<T, double>
  std::vector<T> read(std::string_view name) const {
    std::vector<T> values(info(name).num_elements());
    read_into(name, std::span<T>(values));
    return values;
  }

 private:
  const GgufValue& value(std::string_view key, GgufValueType type, const char* expected, bool any_scalar = false) const {
    const GgufValue* v = find(key);
    if (!v) throw Error(path_.string() + ": missing metadata '" + std::string(key) + "'");
    const bool scalar = v->type != GgufValueType::array && v->type != GgufValueType::string;
    if (any_scalar ? !scalar : v->type != type) throw wrong_type(key, *v, expected);
    return *v;
  }
  /// An integer metadata value as text (u64 and i64 values beyond 2^53 come out rounded).
  static std::string integer_text(double number) {
    if (std::abs(number) < 9e18) return std::to_string(static_cast<std::int64_t>(number));
    return std::to_string(number);
  }
  Error wrong_type(std::string_view key, const GgufValue& v, const char* expected) const {
    std::string got = detail::gguf_type_name(v.type);
    if (v.type == GgufValueType::array) got = std::string("an array of ") + detail::gguf_type_name(v.element_type);
    return Error(path_.string() + ": metadata '" + std::string(key) + "' is " + got + ", expected " + expected);
  }

  std::filesystem::path path_;
  GgufHeader header_;
  std::map<std::string, std::size_t, std::less<>> index_;
};

template <class T>
  requires std::is_same_v<T, float> || std::is_same_v<T, double>
void GgufFile::read_into(std::string_view name, std::span<T> out) const {
  const GgufTensorInfo& tensor = info(name);
  if (out.size() != tensor.num_elements())
    throw Error(path_.string() + ": tensor '" + std::string(name) + "' has " + std::to_string(tensor.num_elements()) +
                " values but the destination holds " + std::to_string(out.size()));
  const GgmlTypeSpec& spec = ggml_spec(tensor.type);
  std::vector<float> staging;  // for double: one piece of floats at a time
  std::size_t done = 0;
  auto dequantize = [&](const unsigned char* bytes, std::size_t n) {
    const std::size_t blocks = n / spec.block_bytes, values = blocks * spec.block_elements;
    if constexpr (std::is_same_v<T, float>) {
      dequantize_blocks(tensor.type, bytes, blocks, out.data() + done);
    } else {
      staging.resize(values);
      dequantize_blocks(tensor.type, bytes, blocks, staging.data());
      std::copy(staging.begin(), staging.end(), out.begin() + static_cast<std::ptrdiff_t>(done));
    }
    done += values;
  };
  detail::read_file_range(path_, header_.file_size, header_.data_start + tensor.offset, tensor.bytes, spec.block_bytes,
                          detail::ReadMethod::map,
                          path_.string() + ": could not read tensor '" + std::string(name) +
                              "' (was the file changed or truncated after it was opened?)",
                          dequantize);
}

}  // namespace circuitry::io
