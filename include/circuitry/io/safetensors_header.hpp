#pragma once
// Safetensors headers (DESIGN.md section 3). A file is an 8-byte little-endian header length N,
// N bytes of JSON header, then the data section. The file is untrusted input, so
// read_safetensors_header() (which SafetensorsFile::open() calls) makes every check
// the reference implementation (the Rust `safetensors` crate) makes before any tensor is read:
//   - the header length is at most 100,000,000 and 8 + N fits in the file;
//   - the header is valid UTF-8 JSON, starts with '{' and has no duplicate keys;
//   - "__metadata__", if present, maps strings to strings;
//   - each tensor has a known dtype, a shape of non-negative integers and data_offsets
//     [begin, end] with begin <= end and end - begin == product(shape) * dtype size, all computed
//     with overflow checks;
//   - sorted by offset, the byte ranges tile the data section exactly: from 0, no gap, no
//     overlap, and the last one ends at the end of the file.
// Every failure is a circuitry::Error whose message starts with the file path.
// The tensor data is read by SafetensorsFile (safetensors.hpp).
#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuitry/core/error.hpp"
#include "circuitry/io/json_parse.hpp"

namespace circuitry::io {

/// The dtypes of the safetensors format. Only F64, F32, F16 and BF16 can be read as float/double;
/// the others are parsed and validated (so a file holding them still opens) but not converted.
enum class DType {
  BOOL, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64, C64,
  F4, F6_E2M3, F6_E3M2  // sub-byte types
};

namespace detail {

struct DTypeSpec {
  DType dtype;
  std::string_view name;
  std::size_t bits;  // per element; F4 and F6 pack elements below a byte
};

inline constexpr std::array<DTypeSpec, 20> dtype_specs{{
    {DType::BOOL, "BOOL", 8},       {DType::U8, "U8", 8},           {DType::I8, "I8", 8},
    {DType::F8_E5M2, "F8_E5M2", 8}, {DType::F8_E4M3, "F8_E4M3", 8}, {DType::F8_E8M0, "F8_E8M0", 8},
    {DType::I16, "I16", 16},        {DType::U16, "U16", 16},        {DType::F16, "F16", 16},
    {DType::BF16, "BF16", 16},      {DType::I32, "I32", 32},        {DType::U32, "U32", 32},
    {DType::F32, "F32", 32},        {DType::F64, "F64", 64},        {DType::I64, "I64", 64},
    {DType::U64, "U64", 64},        {DType::C64, "C64", 64},        {DType::F4, "F4", 4},
    {DType::F6_E2M3, "F6_E2M3", 6}, {DType::F6_E3M2, "F6_E3M2", 6},
}};

inline const DTypeSpec& spec(DType dtype) {
  return *std::find_if(dtype_specs.begin(), dtype_specs.end(), [&](const DTypeSpec& s) { return s.dtype == dtype; });
}

inline constexpr std::uint64_t max_header_bytes = 100'000'000;  // the reference's MAX_HEADER_SIZE

/// a * b, or false when it does not fit in size_t (shapes come from untrusted headers).
inline bool checked_multiply(std::size_t a, std::size_t b, std::size_t& product) {
  if (a != 0 && b > std::numeric_limits<std::size_t>::max() / a) return false;
  product = a * b;
  return true;
}

inline std::string format_shape(const std::vector<std::size_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

/// Offset of the first byte that breaks UTF-8 as Rust's str::from_utf8 defines it (RFC 3629:
/// no overlong forms, no surrogates, nothing above U+10FFFF), or npos when the text is valid.
inline std::size_t find_invalid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    std::size_t length = 0;
    unsigned char second_min = 0x80, second_max = 0xBF;  // the lead byte narrows the second byte
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) second_min = 0xA0;  // overlong
      if (lead == 0xED) second_max = 0x9F;  // surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) second_min = 0x90;  // overlong
      if (lead == 0xF4) second_max = 0x8F;  // above U+10FFFF
    } else {
      return i;
    }
    if (text.size() - i < length) return i;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if (next < (k == 1 ? second_min : 0x80) || next > (k == 1 ? second_max : 0xBF)) return i;
    }
    i += length;
  }
  return std::string_view::npos;
}

/// Parses `text`, the JSON `what` ("header", "index") of the file `where`, rejecting NUL bytes
/// (nlohmann stops at a NUL and would accept "{}\0junk", which the reference rejects) and
/// duplicate keys at any depth: nlohmann keeps the last duplicate silently, which would let two
/// readers of one file see different tensors.
inline nlohmann::json parse_unique_keys(const std::string& text, const std::string& where, const std::string& what) {
  if (const std::size_t nul = text.find('\0'); nul != std::string::npos)
    throw Error(where + ": " + what + " is not valid JSON (NUL byte at offset " + std::to_string(nul) + " of the " + what + ")");
  using Event = nlohmann::json::parse_event_t;
  std::vector<std::set<std::string>> keys_of_open_objects;
  std::string duplicate;
  bool found_duplicate = false;
  auto track_keys = [&](int, Event event, nlohmann::json& parsed) {
    if (event == Event::object_start) {
      keys_of_open_objects.emplace_back();
    } else if (event == Event::object_end) {
      keys_of_open_objects.pop_back();
    } else if (event == Event::key && !found_duplicate &&
               !keys_of_open_objects.back().insert(parsed.get<std::string>()).second) {
      found_duplicate = true;
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text, track_keys);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(where + ": " + what + " is not valid JSON (error at byte " + std::to_string(e.byte) + " of the " + what + ")");
  } catch (const nlohmann::json::exception& e) {  // out_of_range.406: a number such as 1e999
    throw_json_error(e, where + ": " + what);
  }
  if (found_duplicate)
    throw Error(where + ": " + what + " has the duplicate key \"" + duplicate + "\"; each key may appear only once");
  return json;
}

/// A non-negative JSON integer that fits in size_t.
inline bool is_size(const nlohmann::json& value) { return value.is_number_unsigned(); }

}  // namespace detail

inline std::string_view dtype_name(DType dtype) { return detail::spec(dtype).name; }

/// One tensor's header entry. begin and end are byte offsets into the data section.
struct TensorInfo {
  DType dtype = DType::F32;
  std::vector<std::size_t> shape;
  std::size_t begin = 0, end = 0;

  std::size_t num_elements() const {
    std::size_t count = 1;
    for (std::size_t extent : shape) count *= extent;  // validated against overflow in read_safetensors_header()
    return count;
  }
};

/// A validated header: what SafetensorsFile::open() keeps of the file before reading any data.
struct SafetensorsHeader {
  std::uintmax_t file_size = 0;  // when validated: a later read checks that it has not changed
  std::uint64_t data_start = 0;  // 8 + header length
  std::vector<std::pair<std::string, TensorInfo>> tensors;  // in file order (by data offset)
  std::map<std::string, std::string> metadata;              // "__metadata__" (empty when absent)
};

/// Reads and validates the header of the safetensors file `path` (the checks at the top of this
/// file); reads no tensor data.
inline SafetensorsHeader read_safetensors_header(const std::filesystem::path& path) {
  const std::string where = path.string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error(where + ": file does not exist");
  if (std::filesystem::is_directory(path, ec)) throw Error(where + ": is a directory, expected a .safetensors file");
  const std::uintmax_t file_size = std::filesystem::file_size(path, ec);
  std::ifstream in(path, std::ios::binary);
  if (ec || !in) throw Error(where + ": cannot open the file for reading (check its permissions)");

  // The header length: 8 little-endian bytes, bounded so that a corrupt value cannot make us
  // allocate gigabytes or read past the end.
  if (file_size < 8)
    throw Error(where + ": file is " + std::to_string(file_size) +
                " bytes, too short for the 8-byte header length (truncated file, or not a safetensors file?)");
  std::array<unsigned char, 8> length_bytes{};
  in.read(reinterpret_cast<char*>(length_bytes.data()), 8);
  std::uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | length_bytes[static_cast<std::size_t>(i)];
  if (header_length > detail::max_header_bytes)
    throw Error(where + ": header length " + std::to_string(header_length) + " exceeds the limit of " +
                std::to_string(detail::max_header_bytes) + " bytes (corrupt file, or not a safetensors file?)");
  if (8 + header_length > file_size)
    throw Error(where + ": header length " + std::to_string(header_length) + " exceeds the file size " +
                std::to_string(file_size) + " (truncated file?)");
  std::string header(static_cast<std::size_t>(header_length), '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_length));
  if (!in) throw Error(where + ": could not read the header");

  // The header text: UTF-8, an object, no NUL, no duplicate keys.
  if (const std::size_t bad = detail::find_invalid_utf8(header); bad != std::string::npos)
    throw Error(where + ": header is not valid UTF-8 (bad byte at offset " + std::to_string(bad) + " of the header)");
  if (header.empty() || header.front() != '{')
    throw Error(where + ": header must start with '{' (a JSON object of tensor entries)");
  const nlohmann::json json = detail::parse_unique_keys(header, where, "header");

  SafetensorsHeader parsed;
  parsed.file_size = file_size;
  parsed.data_start = 8 + header_length;
  std::vector<std::pair<std::string, TensorInfo>> entries;
  for (const auto& [name, entry] : json.items()) {
    if (name == "__metadata__") {
      if (entry.is_null()) continue;  // serde reads null as "no metadata"
      if (!entry.is_object()) throw Error(where + ": \"__metadata__\" must be an object mapping strings to strings");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string())
          throw Error(where + ": \"__metadata__\" must map strings to strings, but \"" + key + "\" is " +
                      value.type_name());
        parsed.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string tensor = where + ": tensor '" + name + "'";
    if (!entry.is_object()) throw Error(tensor + " must be an object with \"dtype\", \"shape\" and \"data_offsets\"");

    TensorInfo info;
    const auto dtype = entry.find("dtype");
    if (dtype == entry.end() || !dtype->is_string()) throw Error(tensor + " needs a string \"dtype\"");
    const auto known = std::find_if(detail::dtype_specs.begin(), detail::dtype_specs.end(),
                                    [&](const detail::DTypeSpec& s) { return s.name == dtype->get<std::string>(); });
    if (known == detail::dtype_specs.end())
      throw Error(tensor + " has unknown dtype \"" + dtype->get<std::string>() +
                  "\" (F64, F32, F16 and BF16 are readable)");
    info.dtype = known->dtype;

    const auto shape = entry.find("shape");
    if (shape == entry.end() || !shape->is_array() || !std::all_of(shape->begin(), shape->end(), detail::is_size))
      throw Error(tensor + " needs a \"shape\" that is an array of non-negative integers");
    info.shape = shape->get<std::vector<std::size_t>>();

    const auto offsets = entry.find("data_offsets");
    if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 ||
        !std::all_of(offsets->begin(), offsets->end(), detail::is_size))
      throw Error(tensor + " needs \"data_offsets\": [begin, end] with non-negative integers");
    info.begin = (*offsets)[0].get<std::size_t>();
    info.end = (*offsets)[1].get<std::size_t>();
    if (info.begin > info.end)
      throw Error(tensor + " has data_offsets begin " + std::to_string(info.begin) + " > end " +
                  std::to_string(info.end));

    // Byte length = product(shape) * bits / 8, each step checked: a header may claim any shape.
    // As the reference does, the element count comes first (so [2^62, 0] is a valid empty tensor).
    std::size_t elements = 1, bits = 0;
    for (std::size_t extent : info.shape)
      if (!detail::checked_multiply(elements, extent, elements))
        throw Error(tensor + " has shape " + detail::format_shape(info.shape) + " whose element count overflows");
    if (!detail::checked_multiply(elements, std::size_t(detail::spec(info.dtype).bits), bits))
      throw Error(tensor + " has shape " + detail::format_shape(info.shape) + " whose byte size overflows");
    if (bits % 8 != 0)
      throw Error(tensor + " of dtype " + std::string(known->name) + " and shape " + detail::format_shape(info.shape) +
                  " does not fill a whole number of bytes");
    if (info.end - info.begin != bits / 8)
      throw Error(tensor + " has data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
                  "] spanning " + std::to_string(info.end - info.begin) + " bytes, but shape " +
                  detail::format_shape(info.shape) + " of " + std::string(known->name) + " needs " +
                  std::to_string(bits / 8) + " bytes");
    entries.emplace_back(name, std::move(info));
  }

  // The ranges, sorted by offset, must tile the data section: every byte belongs to exactly one
  // tensor, so no tensor aliases another and no unexplained bytes hide in the file.
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return std::pair(a.second.begin, a.second.end) < std::pair(b.second.begin, b.second.end);
  });
  const std::uintmax_t data_size = file_size - parsed.data_start;
  std::size_t covered = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& [name, info] = entries[i];
    const std::string range = "[" + std::to_string(info.begin) + ", " + std::to_string(info.end) + ")";
    if (info.begin < covered)
      throw Error(where + ": tensor '" + name + "' bytes " + range + " overlap tensor '" + entries[i - 1].first +
                  "', which ends at byte " + std::to_string(covered) + " of the data section");
    if (info.begin > covered)
      throw Error(where + ": gap in the data section: bytes [" + std::to_string(covered) + ", " +
                  std::to_string(info.begin) + ") belong to no tensor (before tensor '" + name + "')");
    if (info.end > data_size)
      throw Error(where + ": tensor '" + name + "' bytes " + range + " run past the end of the data section (" +
                  std::to_string(data_size) + " bytes; truncated file?)");
    covered = info.end;
  }
  if (covered != data_size)
    throw Error(where + ": the data section has " + std::to_string(data_size) + " bytes but the tensors cover only " +
                std::to_string(covered) + " (gap: trailing bytes belong to no tensor)");

  parsed.tensors = std::move(entries);
  return parsed;
}

}  // namespace circuitry::io
