#pragma once
// Unicode Normalization Form C (UAX #15), the normalizer "NFC" of Pythia's and Qwen2's
// tokenizer.json: canonically equivalent texts (é as U+00E9, or as e + U+0301) get the same
// bytes, so the same tokens. Three steps:
//   1. Decompose every character fully by the canonical mappings: U+00E9 -> e U+0301,
//      U+212B (ANGSTROM SIGN) -> U+00C5 -> A U+030A, a Hangul syllable into its jamo (by
//      arithmetic, Unicode section 3.12).
//   2. Put marks in canonical order: sort each run of combining marks stably by combining class
//      (a mark below, class 220, before a mark above, class 230: a U+0301 U+0316 -> a U+0316 U+0301).
//   3. Compose: from the left, each character joins the last starter (class 0) before it if the
//      pair has a primary composite and nothing between them blocks it (a character of class 0,
//      or of a class >= its own); a starter joins only the starter right before it (Hangul L+V,
//      LV+T). Composites excluded from composition (U+0958 and others) stay decomposed.
// This is the algorithm of the unicode-normalization-alignments crate (src/recompose.rs), the
// NFC of Hugging Face tokenizers, and its data (unicode_normalization.hpp): Unicode 9.0.0's,
// so a mark Unicode added later has class 0 and a later composition is not made, as there.
// scripts/make_unicode_tables.py checks this algorithm on those tables against tokenizers itself.
//
// Speed: most text is NFC already and stays as it is, byte for byte. A "boundary" character (a
// starter that NFC keeps and that never combines with what is before it: every ASCII character,
// most letters) is a place where NFC may cut the text, NFC(a + b) = NFC(a) + NFC(b) when b starts
// with one; only the stretches between boundaries that hold another character are decomposed and
// composed again.
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "circuitry/text/unicode_normalization.hpp"
#include "circuitry/text/utf8.hpp"

namespace circuitry::text {

namespace detail {

// Hangul syllables: S = 0xAC00 + (L index * 21 + V index) * 28 + T index (Unicode 3.12).
inline constexpr std::uint32_t kHangulS = 0xAC00, kHangulL = 0x1100, kHangulV = 0x1161, kHangulT = 0x11A7;
inline constexpr std::uint32_t kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
inline constexpr std::uint32_t kHangulSCount = kHangulLCount * kHangulVCount * kHangulTCount;

/// The index of the first entry e of the sorted table with (e >> shift) >= key.
template <class T, std::size_t N>
std::size_t lower_bound_of(const T (&table)[N], std::uint64_t key, int shift) {
  std::size_t lo = 0, hi = N;
  while (lo < hi) {
    const std::size_t mid = (lo + hi) / 2;
    if ((std::uint64_t(table[mid]) >> shift) < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/// The canonical combining class of cp (0 for most characters).
inline int combining_class(std::uint32_t cp) {
  if (cp < 0x300) return 0;  // the first mark is U+0300
  const std::size_t i = lower_bound_of(unicode::kCombiningClasses, cp, 8);
  return i < std::size(unicode::kCombiningClasses) && (unicode::kCombiningClasses[i] >> 8) == cp
             ? int(unicode::kCombiningClasses[i] & 0xFF)
             : 0;
}

/// A character and its combining class, as the steps handle them.
struct Mark {
  std::uint32_t cp;
  int ccc;
};

/// Appends the full canonical decomposition of cp.
inline void append_decomposition(std::uint32_t cp, std::vector<Mark>& out) {
  if (cp - kHangulS < kHangulSCount) {
    const std::uint32_t s = cp - kHangulS;
    out.push_back({kHangulL + s / (kHangulVCount * kHangulTCount), 0});
    out.push_back({kHangulV + s % (kHangulVCount * kHangulTCount) / kHangulTCount, 0});
    if (s % kHangulTCount != 0) out.push_back({kHangulT + s % kHangulTCount, 0});
    return;
  }
  const std::size_t i = lower_bound_of(unicode::kDecompositions, cp, 16);
  if (i < std::size(unicode::kDecompositions) && (unicode::kDecompositions[i] >> 16) == cp) {
    const std::uint64_t e = unicode::kDecompositions[i];
    const std::size_t offset = (e >> 3) & 0x1FFF, length = (e & 7) + 1;
    for (std::size_t k = 0; k < length; ++k) {
      const std::uint32_t d = unicode::kDecomposed[offset + k];
      out.push_back({d, combining_class(d)});
    }
    return;
  }
  out.push_back({cp, combining_class(cp)});
}

/// The primary composite of a + b, or 0.
inline std::uint32_t compose(std::uint32_t a, std::uint32_t b) {
  if (a - kHangulL < kHangulLCount && b - kHangulV < kHangulVCount)  // L + V -> LV
    return kHangulS + ((a - kHangulL) * kHangulVCount + (b - kHangulV)) * kHangulTCount;
  if (a - kHangulS < kHangulSCount && (a - kHangulS) % kHangulTCount == 0 && b - kHangulT - 1 < kHangulTCount - 1)
    return a + (b - kHangulT);  // LV + T -> LVT
  const std::uint64_t key = (std::uint64_t(a) << 24) | b;
  const std::size_t i = lower_bound_of(unicode::kCompositionPairs, key, 0);
  return i < std::size(unicode::kCompositionPairs) && unicode::kCompositionPairs[i] == key ? unicode::kComposites[i] : 0;
}

/// Appends NFC of the valid UTF-8 [p, end); `marks` is scratch space.
inline void append_nfc_stretch(const unsigned char* p, const unsigned char* end, std::vector<Mark>& marks, std::string& out) {
  marks.clear();
  for (std::size_t len = 0; p < end; p += len) append_decomposition(code_point_at(p, len), marks);
  // Canonical order: insertion sort of each run of marks by class, stable.
  for (std::size_t i = 1; i < marks.size(); ++i)
    for (std::size_t j = i; j > 0 && marks[j].ccc != 0 && marks[j].ccc < marks[j - 1].ccc; --j) std::swap(marks[j], marks[j - 1]);
  // Compose, in place: marks[0, n) is the output so far, `starter` the index of its last starter
  // (or none), `last` the class of its last character.
  std::size_t n = 0, starter = SIZE_MAX;
  int last = 0;
  for (const Mark m : marks) {
    if (starter != SIZE_MAX && (last == 0 || last < m.ccc))  // last == 0: nothing between them
      if (const std::uint32_t composite = compose(marks[starter].cp, m.cp)) {
        marks[starter].cp = composite;
        continue;
      }
    if (m.ccc == 0) starter = n;
    last = m.ccc;
    marks[n++] = m;
  }
  for (std::size_t i = 0; i < n; ++i) append_utf8(out, marks[i].cp);
}

}  // namespace detail

/// True when every character of `utf8` (valid UTF-8) is a boundary, so NFC leaves it as it is.
inline bool nfc_unchanged(std::string_view utf8) {
  const auto* p = reinterpret_cast<const unsigned char*>(utf8.data());
  const auto* end = p + utf8.size();
  for (std::size_t len = 0; p < end; p += len) {
    if (*p < 0x80) {  // every ASCII character is a boundary (the table's generator checks it)
      len = 1;
      continue;
    }
    if (!unicode::nfc_boundary(detail::decode_utf8(p, len))) return false;
  }
  return true;
}

/// Appends NFC(utf8) (valid UTF-8) to out.
inline void append_nfc(std::string_view utf8, std::string& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(utf8.data());
  const auto* end = p + utf8.size();
  const unsigned char* copied = p;   // out has the NFC of [begin, copied)
  const unsigned char* stretch = p;  // the last boundary (or the start)
  bool changes = false;              // [stretch, here) holds a character that is no boundary
  std::vector<detail::Mark> marks;
  auto boundary = [&](const unsigned char* q) {
    if (changes) {
      out.append(reinterpret_cast<const char*>(copied), std::size_t(stretch - copied));
      detail::append_nfc_stretch(stretch, q, marks, out);
      copied = q;
      changes = false;
    }
    stretch = q;
  };
  for (std::size_t len = 0; p < end; p += len) {
    if (unicode::nfc_boundary(detail::code_point_at(p, len))) boundary(p);
    else changes = true;
  }
  boundary(end);
  out.append(reinterpret_cast<const char*>(copied), std::size_t(end - copied));
}

}  // namespace circuitry::text
