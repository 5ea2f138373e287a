#pragma once
// A minimal reader of Protocol Buffers' wire format (protobuf.dev/programming-guides/encoding),
// enough for SentencePiece's ModelProto (sentencepiece_model.hpp): a message is a run of fields,
// each a key (varint: field number << 3 | wire type) and a value: 0 varint, 1 eight bytes, 2 a
// varint length and that many bytes (strings, bytes, nested messages), 5 four bytes. Groups (wire
// types 3 and 4, deprecated) and anything cut short or malformed are an Error naming `where` and the
// byte offset; unknown fields are the caller's to skip.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "circuitry/core/error.hpp"

namespace circuitry::text::detail {

/// One field of a message: its number, wire type and value (`number` for varints and fixed
/// widths, `bytes` for length-delimited values).
struct ProtoField {
  std::uint32_t number = 0;
  int wire_type = 0;
  std::uint64_t number_value = 0;
  std::string_view bytes;
};

class ProtoReader {
 public:
  /// Reads `message`; `where` names it in errors (a file and the path of nested messages).
  ProtoReader(std::string_view message, std::string where) : data_(message), where_(std::move(where)) {}

  bool done() const { return at_ == data_.size(); }

  /// The next field; call only while !done().
  ProtoField next() {
    const std::size_t start = at_;
    const std::uint64_t key = varint();
    ProtoField f;
    f.wire_type = int(key & 7);
    require(key >> 3 >= 1 && key >> 3 <= 0x1FFFFFFF, fault(start, "a field number outside 1..2^29-1"));
    f.number = std::uint32_t(key >> 3);
    switch (f.wire_type) {
      case 0:
        f.number_value = varint();
        break;
      case 1:
        f.number_value = fixed(8);
        break;
      case 5:
        f.number_value = fixed(4);
        break;
      case 2: {
        const std::uint64_t length = varint();
        require(length <= data_.size() - at_, fault(start, "a length of " + std::to_string(length) + " bytes past the end of the message"));
        f.bytes = data_.substr(at_, std::size_t(length));
        at_ += std::size_t(length);
        break;
      }
      default:
        throw Error(fault(start, "wire type " + std::to_string(f.wire_type) + " (field " + std::to_string(f.number) +
                                     "), which is no type of protobuf's encoding this file format uses"));
    }
    return f;
  }

  /// Checks that field f has the wire type a reader expects of it.
  void expect(const ProtoField& f, int wire_type, const char* field_name) const {
    require(f.wire_type == wire_type, where_ + ": field " + std::to_string(f.number) + " (" + field_name + ") has wire type " +
                                          std::to_string(f.wire_type) + ", not " + std::to_string(wire_type) + " (not a valid message)");
  }

  /// A float field's value (wire type 5, little-endian IEEE 754).
  static float as_float(const ProtoField& f) {
    const auto bits = std::uint32_t(f.number_value);
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
  }

  /// An int32 field's value (a varint; negative numbers are ten bytes of two's complement).
  static std::int64_t as_int(const ProtoField& f) { return std::int64_t(f.number_value); }

  const std::string& where() const { return where_; }

 private:
  std::string fault(std::size_t offset, const std::string& what) const {
    return where_ + ": byte " + std::to_string(offset) + " of the message has " + what + " (a broken or truncated file)";
  }

  std::uint64_t varint() {
    const std::size_t start = at_;
    std::uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      require(at_ < data_.size(), fault(start, "a varint cut off by the end of the message"));
      const auto byte = static_cast<unsigned char>(data_[at_++]);
      value |= std::uint64_t(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0) return value;
    }
    throw Error(fault(start, "a varint longer than ten bytes"));
  }

  std::uint64_t fixed(std::size_t width) {
    require(data_.size() - at_ >= width, fault(at_, "a " + std::to_string(width) + "-byte value cut off by the end of the message"));
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < width; ++i) value |= std::uint64_t(static_cast<unsigned char>(data_[at_ + i])) << (8 * i);
    at_ += width;
    return value;
  }

  std::string_view data_;
  std::string where_;
  std::size_t at_ = 0;
};

}  // namespace circuitry::text::detail
