#pragma once
// GGUF headers (llama.cpp's model files, versions 2 and 3; DESIGN.md section 3). All little-endian:
//   "GGUF", u32 version, u64 tensor_count, u64 metadata_kv_count,
//   metadata_kv_count times: string key, u32 value type, value,
//   tensor_count times: string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset,
//   padding to general.alignment (default 32), the data section (each tensor at its offset).
// A string is a u64 length and that many bytes (no terminator); an array a u32 element type, a
// u64 count and the elements. ne[0] is the innermost (row) length.
//
// The file is untrusted input. read_gguf_header() refuses, with one Error naming the file and
// the fault: a bad magic, a version other than 2 or 3, a header that ends early, a count or
// length larger than the bytes left in the file (so nothing is allocated for it), an unknown
// value type, an array of arrays, a duplicate key or tensor name, general.alignment that is not
// a power of two, more than 4 dimensions, a dimension whose product overflows, a tensor type
// circuitry does not read, a row length that is not a whole number of blocks, and tensor data
// that is misaligned, out of the file or overlapping another tensor's.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "circuitry/core/error.hpp"
#include "circuitry/io/gguf_quants.hpp"
#include "circuitry/io/safetensors_header.hpp"

namespace circuitry::io {

/// GGUF metadata value types (gguf_type).
enum class GgufValueType : std::uint32_t { u8, i8, u16, i16, u32, i32, f32, boolean, string, array, u64, i64, f64 };

/// One metadata value. Numbers (integers, floats, booleans as 0/1) are kept as double, exact for
/// every integer up to 2^53; arrays hold numbers or strings of one element type.
struct GgufValue {
  GgufValueType type = GgufValueType::u8;
  GgufValueType element_type = GgufValueType::u8;  // arrays only
  double number = 0;
  std::string text;
  std::vector<double> numbers;
  std::vector<std::string> strings;

  bool is_integer() const {
    return type != GgufValueType::f32 && type != GgufValueType::f64 && type != GgufValueType::boolean &&
           type != GgufValueType::string && type != GgufValueType::array;
  }
};

inline constexpr std::size_t kGgufMaxDims = 4;

/// One tensor of the file. shape is row-major, the reverse of ggml's ne (ne[0] last), so that a
/// weight written from PyTorch's [out, in] has the shape [out, in] again.
struct GgufTensorInfo {
  std::vector<std::size_t> shape;
  GgmlType type = GgmlType::F32;
  std::uint64_t offset = 0;  // into the data section
  std::size_t bytes = 0;

  std::size_t num_elements() const {
    std::size_t n = 1;
    for (std::size_t extent : shape) n *= extent;  // checked for overflow when read
    return n;
  }
};

struct GgufHeader {
  std::uint32_t version = 0;
  std::uintmax_t file_size = 0;
  std::uint64_t alignment = 32;
  std::uint64_t data_start = 0;
  std::map<std::string, GgufValue, std::less<>> metadata;
  std::vector<std::pair<std::string, GgufTensorInfo>> tensors;  // in file order
};

namespace detail {

/// Reads the header through a buffered stream, checking before each read, and before any
/// allocation, that the file has the bytes.
class GgufCursor {
 public:
  GgufCursor(const std::filesystem::path& path, std::uintmax_t size) : where_(path.string()), size_(size), in_(path, std::ios::binary) {
    if (!in_) throw Error(where_ + ": cannot open the file for reading (check its permissions)");
  }
  std::uint64_t position() const { return position_; }
  std::uint64_t left() const { return size_ - position_; }
  const std::string& where() const { return where_; }

  /// The Error for a header that ends before `what` (n bytes) is whole.
  void need(std::uint64_t n, const std::string& what) const {
    if (n > left())
      throw Error(where_ + ": truncated header: " + what + " at byte " + std::to_string(position_) + " needs " + std::to_string(n) +
                  " bytes but the file has " + std::to_string(left()) + " left");
  }
  void read(void* out, std::size_t n, const std::string& what) {
    need(n, what);
    in_.read(static_cast<char*>(out), static_cast<std::streamsize>(n));
    if (!in_) throw Error(where_ + ": read failed at byte " + std::to_string(position_) + " (" + what + ")");
    position_ += n;
  }
  template <class U>
  U get(const std::string& what) {
    U value;
    read(&value, sizeof value, what);
    return value;
  }
  std::string string(const std::string& what) {
    const auto length = get<std::uint64_t>(what + " (its length)");
    need(length, what + " (" + std::to_string(length) + " bytes)");
    std::string s(static_cast<std::size_t>(length), '\0');
    read(s.data(), s.size(), what);
    return s;
  }

 private:
  std::string where_;
  std::uint64_t size_, position_ = 0;
  std::ifstream in_;
};

inline const char* gguf_type_name(GgufValueType t) {
  static constexpr const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
  return names[static_cast<std::uint32_t>(t)];
}

inline GgufValueType read_value_type(GgufCursor& in, const std::string& what) {
  const auto t = in.get<std::uint32_t>(what);
  if (t > static_cast<std::uint32_t>(GgufValueType::f64))
    throw Error(in.where() + ": " + what + " is " + std::to_string(t) + ", not a GGUF value type (0..12)");
  return static_cast<GgufValueType>(t);
}

/// The bytes of one scalar of type t (strings and arrays: 0).
inline std::size_t scalar_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::u8: case GgufValueType::i8: case GgufValueType::boolean: return 1;
    case GgufValueType::u16: case GgufValueType::i16: return 2;
    case GgufValueType::u32: case GgufValueType::i32: case GgufValueType::f32: return 4;
    case GgufValueType::u64: case GgufValueType::i64: case GgufValueType::f64: return 8;
    default: return 0;
  }
}

inline double read_number(GgufCursor& in, GgufValueType t, const std::string& what) {
  switch (t) {
    case GgufValueType::u8: return in.get<std::uint8_t>(what);
    case GgufValueType::i8: return in.get<std::int8_t>(what);
    case GgufValueType::u16: return in.get<std::uint16_t>(what);
    case GgufValueType::i16: return in.get<std::int16_t>(what);
    case GgufValueType::u32: return in.get<std::uint32_t>(what);
    case GgufValueType::i32: return in.get<std::int32_t>(what);
    case GgufValueType::f32: return in.get<float>(what);
    case GgufValueType::u64: return static_cast<double>(in.get<std::uint64_t>(what));
    case GgufValueType::i64: return static_cast<double>(in.get<std::int64_t>(what));
    case GgufValueType::f64: return in.get<double>(what);
    default: {  // boolean
      const auto b = in.get<std::uint8_t>(what);
      if (b > 1) throw Error(in.where() + ": " + what + " is a bool of value " + std::to_string(b) + " (0 or 1 expected)");
      return b;
    }
  }
}

inline GgufValue read_value(GgufCursor& in, const std::string& key) {
  GgufValue v;
  const std::string what = "the value of '" + key + "'";
  v.type = read_value_type(in, "the value type of '" + key + "'");
  if (v.type == GgufValueType::string) {
    v.text = in.string(what);
  } else if (v.type != GgufValueType::array) {
    v.number = read_number(in, v.type, what);
  } else {
    v.element_type = read_value_type(in, "the element type of array '" + key + "'");
    if (v.element_type == GgufValueType::array)
      throw Error(in.where() + ": metadata '" + key + "' is an array of arrays, which circuitry does not read");
    const auto count = in.get<std::uint64_t>("the length of array '" + key + "'");
    // Each element takes at least its scalar size (a string at least its 8-byte length).
    const std::size_t least = v.element_type == GgufValueType::string ? 8 : scalar_bytes(v.element_type);
    if (count > in.left() / least)
      throw Error(in.where() + ": truncated header: array '" + key + "' claims " + std::to_string(count) + " elements of type " +
                  gguf_type_name(v.element_type) + ", more than the " + std::to_string(in.left()) + " bytes left in the file hold");
    const std::string element = "an element of array '" + key + "'";
    if (v.element_type == GgufValueType::string) {
      v.strings.reserve(static_cast<std::size_t>(count));
      for (std::uint64_t i = 0; i < count; ++i) v.strings.push_back(in.string(element));
    } else {
      v.numbers.reserve(static_cast<std::size_t>(count));
      for (std::uint64_t i = 0; i < count; ++i) v.numbers.push_back(read_number(in, v.element_type, element));
    }
  }
  return v;
}

inline void read_tensor_infos(GgufCursor& in, std::uint64_t count, GgufHeader& h) {
  const std::string& where = in.where();
  std::map<std::string, std::size_t, std::less<>> seen;
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::string ordinal = "tensor " + std::to_string(i);
    std::string name = in.string("the name of " + ordinal);
    const std::string tensor = "tensor '" + name + "'";
    if (!seen.emplace(name, i).second) throw Error(where + ": two tensors are named '" + name + "'");
    const auto n_dims = in.get<std::uint32_t>("the number of dimensions of " + tensor);
    if (n_dims > kGgufMaxDims)
      throw Error(where + ": " + tensor + " has " + std::to_string(n_dims) + " dimensions; GGUF tensors have at most 4");
    std::vector<std::size_t> ne(n_dims);
    std::size_t elements = 1;
    for (std::size_t& extent : ne) {
      const auto e = in.get<std::uint64_t>("a dimension of " + tensor);
      if (e > std::numeric_limits<std::int64_t>::max() || !checked_multiply(elements, static_cast<std::size_t>(e), elements))
        throw Error(where + ": " + tensor + " has dimensions whose product overflows");
      extent = static_cast<std::size_t>(e);
    }
    const auto type_id = in.get<std::uint32_t>("the type of " + tensor);
    const GgmlTypeSpec* spec = find_ggml_type(type_id);
    if (!spec) {
      const std::string_view known = ggml_type_name(type_id);
      throw Error(where + ": " + tensor + " has " +
                  (known.empty() ? "the unknown tensor type " + std::to_string(type_id)
                                 : "tensor type " + std::string(known) + " (" + std::to_string(type_id) + ")") +
                  "; circuitry reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K");
    }
    const std::size_t row = ne.empty() ? 1 : ne[0];
    if (row % spec->block_elements != 0)
      throw Error(where + ": " + tensor + " has rows of " + std::to_string(row) + " values, not a whole number of " +
                  std::string(spec->name) + " blocks of " + std::to_string(spec->block_elements));
    GgufTensorInfo info;
    info.type = spec->type;
    info.shape.assign(ne.rbegin(), ne.rend());
    if (!checked_multiply(elements / spec->block_elements, spec->block_bytes, info.bytes))
      throw Error(where + ": " + tensor + " has dimensions whose byte size overflows");
    info.offset = in.get<std::uint64_t>("the data offset of " + tensor);
    h.tensors.emplace_back(std::move(name), std::move(info));
  }
}

/// Each tensor's data aligned, inside the data section, and not overlapping another's.
inline void check_tensor_data(const GgufHeader& h, const std::string& where) {
  const std::uint64_t data_bytes = h.file_size - h.data_start;
  std::vector<std::pair<std::uint64_t, std::size_t>> order;  // (offset, index)
  for (std::size_t i = 0; i < h.tensors.size(); ++i) {
    const auto& [name, t] = h.tensors[i];
    if (t.offset % h.alignment != 0)
      throw Error(where + ": tensor '" + name + "' starts at data offset " + std::to_string(t.offset) +
                  ", which is not a multiple of the alignment " + std::to_string(h.alignment));
    if (t.offset > data_bytes || t.bytes > data_bytes - t.offset)
      throw Error(where + ": tensor '" + name + "' (" + std::to_string(t.bytes) + " bytes at data offset " + std::to_string(t.offset) +
                  ") lies outside the file, whose data section has " + std::to_string(data_bytes) + " bytes (truncated file?)");
    if (t.bytes) order.emplace_back(t.offset, i);
  }
  std::sort(order.begin(), order.end());
  for (std::size_t k = 1; k < order.size(); ++k) {
    const auto& [before_name, before] = h.tensors[order[k - 1].second];
    if (before.offset + before.bytes > order[k].first)
      throw Error(where + ": the data of tensors '" + before_name + "' and '" + h.tensors[order[k].second].first + "' overlap");
  }
}

}  // namespace detail

/// Reads and validates the header of the GGUF file `path` (the checks at the top of this file);
/// reads no tensor data.
inline GgufHeader read_gguf_header(const std::filesystem::path& path) {
  const std::string where = path.string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw Error(where + ": not a regular file (expected a .gguf model file)");
  GgufHeader h;
  h.file_size = std::filesystem::file_size(path, ec);
  if (ec) throw Error(where + ": cannot read the file size (" + ec.message() + ")");
  detail::GgufCursor in(path, h.file_size);
  char magic[4];
  in.read(magic, 4, "the magic \"GGUF\"");
  if (std::string_view(magic, 4) != "GGUF") throw Error(where + ": not a GGUF file (the first 4 bytes are not \"GGUF\")");
  h.version = in.get<std::uint32_t>("the version");
  if (h.version != 2 && h.version != 3)
    throw Error(where + ": GGUF version " + std::to_string(h.version) + " is not supported (circuitry reads versions 2 and 3)");
  const auto n_tensors = in.get<std::uint64_t>("the tensor count");
  const auto n_values = in.get<std::uint64_t>("the metadata count");
  // A key-value pair takes at least 13 bytes, a tensor info 24: larger counts cannot fit.
  if (n_values > in.left() / 13 || n_tensors > in.left() / 24)
    throw Error(where + ": truncated header: it claims " + std::to_string(n_tensors) + " tensors and " + std::to_string(n_values) +
                " metadata values, more than the " + std::to_string(in.left()) + " bytes left in the file hold");
  for (std::uint64_t i = 0; i < n_values; ++i) {
    std::string key = in.string("the key of metadata value " + std::to_string(i));
    GgufValue value = detail::read_value(in, key);
    if (!h.metadata.emplace(key, std::move(value)).second)
      throw Error(where + ": the metadata key '" + key + "' appears twice; each key may appear only once");
  }
  if (const auto a = h.metadata.find("general.alignment"); a != h.metadata.end()) {
    const GgufValue& v = a->second;
    const bool in_range = v.is_integer() && v.number >= 1 && v.number <= 65536;
    const auto n = in_range ? static_cast<std::uint64_t>(v.number) : 0;
    if (!in_range || (n & (n - 1)) != 0)
      throw Error(where + ": general.alignment must be an integer power of two (at most 65536), got " + std::to_string(v.number));
    h.alignment = n;
  }
  detail::read_tensor_infos(in, n_tensors, h);
  h.data_start = (in.position() + h.alignment - 1) / h.alignment * h.alignment;
  if (h.data_start > h.file_size) {
    if (!h.tensors.empty())
      throw Error(where + ": truncated file: the data section would start at byte " + std::to_string(h.data_start) +
                  ", past the end of the file (" + std::to_string(h.file_size) + " bytes)");
    h.data_start = h.file_size;
  }
  detail::check_tensor_data(h, where);
  return h;
}

}  // namespace circuitry::io
