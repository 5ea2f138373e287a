#pragma once
// UTF-8 (RFC 3629), as the tokenizers read and write it: checking untrusted text, reading one
// code point, writing one. A code point U+0000..U+10FFFF (not a UTF-16 surrogate U+D800..DFFF)
// takes 1 to 4 bytes:
//   U+0000..007F    0xxxxxxx
//   U+0080..07FF    110xxxxx 10xxxxxx
//   U+0800..FFFF    1110xxxx 10xxxxxx 10xxxxxx
//   U+10000..10FFFF 11110xxx 10xxxxxx 10xxxxxx 10xxxxxx
// and only the shortest form is valid ("overlong" forms such as C0 AF for '/' are not).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "circuitry/core/error.hpp"

namespace circuitry::text::detail {

/// Checks that text is UTF-8 (shortest forms only, no surrogates, at most U+10FFFF) and throws
/// naming the byte offset of the first fault.
inline void require_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  auto fail = [&](const std::string& why) {
    throw Error("invalid UTF-8 at byte " + std::to_string(i) + ": " + why);
  };
  while (i < n) {
    if (i + 8 <= n) {  // eight ASCII bytes at a time
      std::uint64_t chunk;
      std::memcpy(&chunk, s + i, 8);
      if ((chunk & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    const unsigned c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else if (c >= 0x80 && c <= 0xBF) fail("a continuation byte with no lead byte");
    else if (c == 0xC0 || c == 0xC1) fail("an overlong encoding (lead byte 0x" + std::string(c == 0xC0 ? "C0" : "C1") + ")");
    else fail("byte 0x" + std::string(1, "0123456789ABCDEF"[c >> 4]) + "0123456789ABCDEF"[c & 15] + " never occurs in UTF-8");
    if (i + len > n) fail("a sequence cut short by the end of the text");
    for (std::size_t k = 1; k < len; ++k)
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) fail("a sequence cut short (byte " + std::to_string(i + k) + " is not a continuation byte)");
    const unsigned second = s[i + 1];
    if (second < lo || second > hi) {
      if (c == 0xED) fail("a UTF-16 surrogate (U+D800..U+DFFF) encoded as UTF-8");
      if (c == 0xF4) fail("a code point above U+10FFFF");
      fail("an overlong encoding");
    }
    i += len;
  }
}

/// The code point at p (valid UTF-8, not ASCII) and its length in bytes.
inline std::uint32_t decode_utf8(const unsigned char* p, std::size_t& len) {
  const unsigned c = p[0];
  if (c < 0xE0) return len = 2, ((c & 0x1Fu) << 6) | (p[1] & 0x3Fu);
  if (c < 0xF0) return len = 3, ((c & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
  return len = 4, ((c & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
}

/// The code point at p (valid UTF-8, any) and its length in bytes.
inline std::uint32_t code_point_at(const unsigned char* p, std::size_t& len) {
  if (p[0] < 0x80) return len = 1, p[0];
  return decode_utf8(p, len);
}

/// Appends code point cp (at most U+10FFFF, not a surrogate) as UTF-8.
inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

}  // namespace circuitry::text::detail
