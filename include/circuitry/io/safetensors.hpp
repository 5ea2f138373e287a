#pragma once
// Safetensors files (DESIGN.md section 3): an 8-byte little-endian header length N, N bytes of
// JSON header, then the data section. The file is untrusted input, so open() makes every check
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
//
// Tensor data is read through a read-only memory map of the file, a window of at most 16 MiB
// at a time, and converted straight from the mapped pages into the caller's storage: loading a
// model costs the converted weights and nothing proportional to the file. Where mapping is not
// available or fails, the same bytes are streamed through a 1 MiB buffer instead.
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#if __has_include(<sys/mman.h>) && __has_include(<sys/stat.h>) && __has_include(<fcntl.h>) && __has_include(<unistd.h>)
#define CIRCUITRY_HAS_MMAP 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include <nlohmann/json.hpp>

#include "circuitry/core/error.hpp"
#include "circuitry/io/atomic_file.hpp"
#include "circuitry/io/json_parse.hpp"

namespace circuitry::io {

static_assert(std::endian::native == std::endian::little,
              "circuitry reads and writes little-endian safetensors data in place: a little-endian host is needed");

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

/// How tensor bytes come off the disk: mapped (the default) or streamed (the fallback).
enum class ReadMethod { map, stream };

inline constexpr std::size_t map_window_bytes = std::size_t(1) << 24;     // 16 MiB mapped at a time
inline constexpr std::size_t stream_buffer_bytes = std::size_t(1) << 20;  // 1 MiB read at a time

/// Streams `length` bytes at `offset` of the open stream through one buffer of at most `piece`
/// bytes, calling consume(bytes, n) for each buffer-full.
template <class Consume>
void consume_streamed(std::ifstream& in, std::uint64_t offset, std::size_t length, std::size_t piece,
                      const std::string& failure, Consume& consume) {
  std::vector<unsigned char> buffer(std::min(piece, length));
  in.seekg(static_cast<std::streamoff>(offset));
  for (std::size_t done = 0; done < length;) {
    const std::size_t n = std::min(piece, length - done);
    in.read(reinterpret_cast<char*>(buffer.data()), static_cast<std::streamsize>(n));
    if (!in) throw Error(failure);
    consume(buffer.data(), n);
    done += n;
  }
}

#ifdef CIRCUITRY_HAS_MMAP
/// Maps `length` bytes at `offset` of the open file `fd` a window of at most `piece` bytes at a
/// time (read-only, unmapped again before the next window, so at most one window is resident)
/// and calls consume(bytes, n) on each. Returns how many bytes it consumed: all of them, or
/// fewer when the system refused a mapping, so that the caller streams the rest.
template <class Consume>
std::size_t consume_mapped(int fd, std::uint64_t offset, std::size_t length, std::size_t piece, Consume& consume) {
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  std::size_t done = 0;
  while (done < length) {
    const std::size_t n = std::min(piece, length - done);
    const std::uint64_t start = offset + done;
    const std::uint64_t aligned = start - start % page;  // a mapping starts on a page boundary
    const std::size_t mapped_bytes = static_cast<std::size_t>(start - aligned) + n;
    void* mapped = ::mmap(nullptr, mapped_bytes, PROT_READ, MAP_PRIVATE, fd, static_cast<off_t>(aligned));
    if (mapped == MAP_FAILED) return done;
    struct Unmap {
      void* address;
      std::size_t bytes;
      ~Unmap() { ::munmap(address, bytes); }
    } unmap{mapped, mapped_bytes};
    ::madvise(mapped, mapped_bytes, MADV_SEQUENTIAL);  // a hint: read ahead, drop pages behind
    consume(static_cast<const unsigned char*>(mapped) + (start - aligned), n);
    done += n;
  }
  return done;
}
#endif

/// Calls consume(bytes, n) on consecutive pieces of the `length` bytes at `offset` of the file at
/// `path`, in order; each piece holds whole `unit`-byte elements and at most max(unit, window)
/// bytes (map) or max(unit, buffer) bytes (stream), so memory use does not grow with `length`.
/// The file must still have `file_size` bytes (the size it had when it was validated); if not, or
/// if it cannot be read, the Error is `failure`. ReadMethod::map falls back to streaming where
/// mapping is unavailable or refused. (A file truncated while mapped cannot be detected: the
/// reader would fault. safetensors readers that map files, the reference one too, share this.)
template <class Consume>
void read_file_range(const std::filesystem::path& path, std::uintmax_t file_size, std::uint64_t offset,
                     std::size_t length, std::size_t unit, ReadMethod method, const std::string& failure,
                     Consume&& consume, std::size_t window = map_window_bytes,
                     std::size_t buffer = stream_buffer_bytes) {
  auto whole_units = [unit](std::size_t bytes) { return std::max(unit, bytes - bytes % unit); };
  std::size_t done = 0;
#ifdef CIRCUITRY_HAS_MMAP
  if (method == ReadMethod::map && length > 0) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(failure);
    struct Close {
      int fd;
      ~Close() { ::close(fd); }
    } closer{fd};
    struct stat status {};
    if (::fstat(fd, &status) != 0 || static_cast<std::uintmax_t>(status.st_size) != file_size) throw Error(failure);
    done = consume_mapped(fd, offset, length, whole_units(window), consume);
  }
#endif
  if (done == length) return;
  std::error_code ec;
  std::ifstream in(path, std::ios::binary);
  if (!in || std::filesystem::file_size(path, ec) != file_size || ec) throw Error(failure);
  consume_streamed(in, offset + done, length - done, whole_units(buffer), failure, consume);
}

}  // namespace detail

inline std::string_view dtype_name(DType dtype) { return detail::spec(dtype).name; }

/// One tensor's header entry. begin and end are byte offsets into the data section.
struct TensorInfo {
  DType dtype = DType::F32;
  std::vector<std::size_t> shape;
  std::size_t begin = 0, end = 0;

  std::size_t num_elements() const {
    std::size_t count = 1;
    for (std::size_t extent : shape) count *= extent;  // validated against overflow in open()
    return count;
  }
};

class SafetensorsFile {
 public:
  /// Opens and validates `path` (see the checks at the top of this file); reads no tensor data.
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

  SafetensorsFile file;
  file.path_ = path;
  file.file_size_ = file_size;
  file.data_start_ = 8 + header_length;
  std::vector<std::pair<std::string, TensorInfo>> entries;
  for (const auto& [name, entry] : json.items()) {
    if (name == "__metadata__") {
      if (entry.is_null()) continue;  // serde reads null as "no metadata"
      if (!entry.is_object()) throw Error(where + ": \"__metadata__\" must be an object mapping strings to strings");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string())
          throw Error(where + ": \"__metadata__\" must map strings to strings, but \"" + key + "\" is " +
                      value.type_name());
        file.metadata_[key] = value.get<std::string>();
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
  const std::uintmax_t data_size = file_size - file.data_start_;
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

  for (auto& [name, info] : entries) {
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
