#pragma once
// The tensor types of llama.cpp's GGUF files (ggml's ggml_type) that circuitry reads, and their
// dequantization to float, operation for operation as ggml's reference code does it
// (ggml-quants.c, dequantize_row_*), so a weight comes out as llama.cpp itself would compute it.
//
// A quantized tensor is a sequence of blocks, each holding `block_elements` consecutive values of
// one row (ne[0] is a multiple of it) in `block_bytes` bytes, little-endian, unaligned:
//   Q8_0  {f16 d; i8 qs[32]}                            y = d q
//   Q4_0  {f16 d; u8 qs[16]}                            y = d (nibble - 8); low nibbles are
//                                                       values 0..15, high nibbles 16..31
//   Q4_1  {f16 d, m; u8 qs[16]}                         y = d nibble + m
//   Q5_0  {f16 d; u8 qh[4]; u8 qs[16]}                  the fifth bit of value j is bit j of qh
//   Q5_1  {f16 d, m; u8 qh[4]; u8 qs[16]}               (as a little-endian u32); as Q4_0 / Q4_1
//   The K-quants ("super-blocks" of 256 values in 16 or 8 sub-blocks with their own scales):
//   Q2_K  {u8 scales[16]; u8 qs[64]; f16 d, dmin}       sub-block scale d (s & 15), min dmin (s >> 4)
//   Q3_K  {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}   6-bit signed scales, 2 + 1 bit values
//   Q4_K  {f16 d, dmin; u8 scales[12]; u8 qs[128]}     6-bit scales and mins (get_scale_min_k4)
//   Q5_K  {f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}
//   Q6_K  {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}
//   F32, F16, BF16: one value per "block".
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "circuitry/io/safetensors.hpp"

namespace circuitry::io {

enum class GgmlType : std::uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, BF16 = 30,
};

struct GgmlTypeSpec {
  GgmlType type;
  std::string_view name;
  std::size_t block_elements, block_bytes;
};

inline constexpr std::size_t kQK = 256;  // values per K-quant super-block (ggml's QK_K)

inline constexpr std::array<GgmlTypeSpec, 13> ggml_type_specs{{
    {GgmlType::F32, "F32", 1, 4},          {GgmlType::F16, "F16", 1, 2},           {GgmlType::BF16, "BF16", 1, 2},
    {GgmlType::Q8_0, "Q8_0", 32, 34},      {GgmlType::Q4_0, "Q4_0", 32, 18},       {GgmlType::Q4_1, "Q4_1", 32, 20},
    {GgmlType::Q5_0, "Q5_0", 32, 22},      {GgmlType::Q5_1, "Q5_1", 32, 24},       {GgmlType::Q2_K, "Q2_K", kQK, 84},
    {GgmlType::Q3_K, "Q3_K", kQK, 110},    {GgmlType::Q4_K, "Q4_K", kQK, 144},     {GgmlType::Q5_K, "Q5_K", kQK, 176},
    {GgmlType::Q6_K, "Q6_K", kQK, 210},
}};

/// The spec of ggml type number `id`, or nullptr when circuitry does not read it.
inline const GgmlTypeSpec* find_ggml_type(std::uint32_t id) {
  for (const GgmlTypeSpec& s : ggml_type_specs)
    if (static_cast<std::uint32_t>(s.type) == id) return &s;
  return nullptr;
}

inline const GgmlTypeSpec& ggml_spec(GgmlType type) { return *find_ggml_type(static_cast<std::uint32_t>(type)); }

/// The name ggml gives type number `id` (for messages about the types circuitry does not read),
/// or "" for a number ggml does not define.
inline std::string_view ggml_type_name(std::uint32_t id) {
  if (const GgmlTypeSpec* s = find_ggml_type(id)) return s->name;
  static constexpr std::array<std::pair<std::uint32_t, std::string_view>, 20> others{{
      {4, "Q4_2 (removed)"}, {5, "Q4_3 (removed)"}, {9, "Q8_1"}, {15, "Q8_K"}, {16, "IQ2_XXS"}, {17, "IQ2_XS"},
      {18, "IQ3_XXS"}, {19, "IQ1_S"}, {20, "IQ4_NL"}, {21, "IQ3_S"}, {22, "IQ2_S"}, {23, "IQ4_XS"}, {24, "I8"},
      {25, "I16"}, {26, "I32"}, {27, "I64"}, {28, "F64"}, {29, "IQ1_M"}, {34, "TQ1_0"}, {35, "TQ2_0"},
  }};
  for (const auto& [number, name] : others)
    if (number == id) return name;
  return {};
}

namespace detail {

inline float f16_at(const unsigned char* p) {
  std::uint16_t bits;
  std::memcpy(&bits, p, 2);
  return f16_to_float(bits);
}

/// ggml's get_scale_min_k4: the 6-bit scale and min of sub-block j from Q4_K's / Q5_K's 12 bytes.
inline void scale_min_k4(int j, const unsigned char* q, std::uint8_t& scale, std::uint8_t& min) {
  if (j < 4) {
    scale = q[j] & 63;
    min = q[j + 4] & 63;
  } else {
    scale = static_cast<std::uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    min = static_cast<std::uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

/// One block of each type into y (dequantize_row_* for one block).
inline void dequantize_q8_0(const unsigned char* b, float* y) {
  const float d = f16_at(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<std::int8_t>(b[2 + j])) * d;
}

/// Q4_0 (has_min false) and Q4_1 (true): low nibbles are values 0..15, high nibbles 16..31.
inline void dequantize_q4(const unsigned char* b, float* y, bool has_min) {
  const float d = f16_at(b), m = has_min ? f16_at(b + 2) : 0.0f;
  const unsigned char* qs = b + (has_min ? 4 : 2);
  for (int j = 0; j < 16; ++j) {
    const int low = qs[j] & 0x0F, high = qs[j] >> 4;
    if (has_min) {
      y[j] = static_cast<float>(low) * d + m;
      y[j + 16] = static_cast<float>(high) * d + m;
    } else {
      y[j] = static_cast<float>(low - 8) * d;
      y[j + 16] = static_cast<float>(high - 8) * d;
    }
  }
}

/// Q5_0 and Q5_1: as Q4_*, the fifth bit of value j (and j + 16) from bit j (j + 16) of qh.
inline void dequantize_q5(const unsigned char* b, float* y, bool has_min) {
  const float d = f16_at(b), m = has_min ? f16_at(b + 2) : 0.0f;
  std::uint32_t qh;
  std::memcpy(&qh, b + (has_min ? 4 : 2), 4);
  const unsigned char* qs = b + (has_min ? 8 : 6);
  for (int j = 0; j < 16; ++j) {
    const int high_bit0 = static_cast<int>(((qh >> j) << 4) & 0x10), high_bit1 = static_cast<int>((qh >> (j + 12)) & 0x10);
    const int x0 = (qs[j] & 0x0F) | high_bit0, x1 = (qs[j] >> 4) | high_bit1;
    if (has_min) {
      y[j] = static_cast<float>(x0) * d + m;
      y[j + 16] = static_cast<float>(x1) * d + m;
    } else {
      y[j] = static_cast<float>(x0 - 16) * d;
      y[j + 16] = static_cast<float>(x1 - 16) * d;
    }
  }
}

inline void dequantize_q2_k(const unsigned char* b, float* y) {
  const unsigned char* scales = b;
  const unsigned char* q = b + 16;
  const float d = f16_at(b + 80), min = f16_at(b + 82);
  int is = 0;
  for (std::size_t n = 0; n < kQK; n += 128, q += 32)
    for (int shift = 0; shift < 8; shift += 2)
      for (int half = 0; half < 2; ++half) {  // two sub-blocks of 16 per shift
        const std::uint8_t sc = scales[is++];
        const float dl = d * static_cast<float>(sc & 0xF), ml = min * static_cast<float>(sc >> 4);
        for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((q[l + 16 * half] >> shift) & 3) - ml;
      }
}

inline void dequantize_q3_k(const unsigned char* b, float* y) {
  const unsigned char* hmask = b;
  const unsigned char* q = b + 32;
  const unsigned char* packed = b + 96;
  const float d_all = f16_at(b + 108);
  // The 16 6-bit scales: low 4 bits from bytes 0..7 (low nibbles, then high nibbles), the top 2
  // bits from bytes 8..11; stored with an offset of 32.
  std::array<int, 16> scale{};
  for (int j = 0; j < 16; ++j) {
    const int low = j < 8 ? (packed[j] & 0xF) : (packed[j - 8] >> 4);
    const int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    scale[static_cast<std::size_t>(j)] = (low | (high << 4)) - 32;
  }
  int is = 0;
  std::uint8_t m = 1;
  for (std::size_t n = 0; n < kQK; n += 128, q += 32)
    for (int shift = 0; shift < 8; shift += 2, m = static_cast<std::uint8_t>(m << 1))
      for (int half = 0; half < 2; ++half) {
        const float dl = d_all * static_cast<float>(scale[static_cast<std::size_t>(is++)]);
        for (int l = 16 * half; l < 16 * half + 16; ++l)
          *y++ = dl * static_cast<float>(((q[l] >> shift) & 3) - ((hmask[l] & m) ? 0 : 4));
      }
}

/// Q4_K (high_bits null) and Q5_K (the fifth bits).
inline void dequantize_q45_k(const unsigned char* b, float* y, bool five_bits) {
  const float d = f16_at(b), min = f16_at(b + 2);
  const unsigned char* scales = b + 4;
  const unsigned char* qh = b + 16;
  const unsigned char* q = b + (five_bits ? 48 : 16);
  std::uint8_t u1 = 1, u2 = 2;
  for (int is = 0; is < 8; is += 2, q += 32) {
    std::uint8_t sc, m;
    scale_min_k4(is, scales, sc, m);
    const float d1 = d * static_cast<float>(sc), m1 = min * static_cast<float>(m);
    scale_min_k4(is + 1, scales, sc, m);
    const float d2 = d * static_cast<float>(sc), m2 = min * static_cast<float>(m);
    for (int l = 0; l < 32; ++l)
      *y++ = d1 * static_cast<float>((q[l] & 0xF) + (five_bits && (qh[l] & u1) ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l)
      *y++ = d2 * static_cast<float>((q[l] >> 4) + (five_bits && (qh[l] & u2) ? 16 : 0)) - m2;
    u1 = static_cast<std::uint8_t>(u1 << 2);
    u2 = static_cast<std::uint8_t>(u2 << 2);
  }
}

inline void dequantize_q6_k(const unsigned char* b, float* y) {
  const unsigned char* ql = b;
  const unsigned char* qh = b + 128;
  const auto* sc = reinterpret_cast<const std::int8_t*>(b + 192);
  const float d = f16_at(b + 208);
  for (std::size_t n = 0; n < kQK; n += 128, y += 128, ql += 64, qh += 32, sc += 8)
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
}

}  // namespace detail

/// Dequantizes `n_blocks` consecutive blocks of `type` at `blocks` into out
/// (n_blocks * block_elements values).
inline void dequantize_blocks(GgmlType type, const unsigned char* blocks, std::size_t n_blocks, float* out) {
  const GgmlTypeSpec& spec = ggml_spec(type);
  for (std::size_t i = 0; i < n_blocks; ++i) {
    const unsigned char* b = blocks + i * spec.block_bytes;
    float* y = out + i * spec.block_elements;
    switch (type) {
      case GgmlType::F32: std::memcpy(y, b, 4); break;
      case GgmlType::F16: *y = detail::f16_at(b); break;
      case GgmlType::BF16: {
        std::uint16_t bits;
        std::memcpy(&bits, b, 2);
        *y = bf16_to_float(bits);
        break;
      }
      case GgmlType::Q8_0: detail::dequantize_q8_0(b, y); break;
      case GgmlType::Q4_0: detail::dequantize_q4(b, y, false); break;
      case GgmlType::Q4_1: detail::dequantize_q4(b, y, true); break;
      case GgmlType::Q5_0: detail::dequantize_q5(b, y, false); break;
      case GgmlType::Q5_1: detail::dequantize_q5(b, y, true); break;
      case GgmlType::Q2_K: detail::dequantize_q2_k(b, y); break;
      case GgmlType::Q3_K: detail::dequantize_q3_k(b, y); break;
      case GgmlType::Q4_K: detail::dequantize_q45_k(b, y, false); break;
      case GgmlType::Q5_K: detail::dequantize_q45_k(b, y, true); break;
      case GgmlType::Q6_K: detail::dequantize_q6_k(b, y); break;
    }
  }
}

}  // namespace circuitry::io
