#pragma once
// Pre-tokenization: cutting a text into the words that byte-level BPE then encodes one by one
// (BPE never merges across two words). Byte-level tokenizers define it by a regex; four are
// known here, each hand-written as a backtracking regex engine (Oniguruma in Hugging Face
// tokenizers, Rust's regex in tiktoken) runs it: at each position the alternatives are tried in
// order and the first that matches gives the word.
//
//   GPT-2 (also Pythia / GPT-NeoX), encoder.py and tokenizers' ByteLevel(use_regex=true):
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   contractions (case-sensitive), then a run of letters, of numbers or of other symbols with
//   at most one leading space, then whitespace. `\s+(?!\S)` makes a run of whitespace followed
//   by a non-space give its last character back, so "a   b" is "a", "  ", " b": the space before
//   a word belongs to the word.
//
//   Llama 3 (tiktoken's cl100k_base pattern), a Split pre-tokenizer in its tokenizer.json:
//     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   contractions in any case; a run of letters with one optional character before it that is
//   no letter, number, \r or \n ("\tword", "(word", " word" are one word each); numbers by
//   threes ("1234567" is "123", "456", "7"); a run of other symbols, with one optional space
//   before it and the line ends that follow it; whitespace up to and including its last \r or
//   \n; then whitespace as in GPT-2.
//
//   Qwen2: Llama 3's with \p{N} for \p{N}{1,3}: every digit is its own word.
//
//   StarCoder2 / SmolLM: every number character (\p{N}) is a word of its own, and the text
//   between is cut by GPT-2's pattern, each piece on its own (so "a  1" is "a", "  ", "1": the
//   piece "a  " ends in its run of spaces). tokenizer.json spells it Sequence [Digits
//   {individual_digits: true}, ByteLevel {use_regex: true}] (tokenizers' Digits isolates each
//   char::is_numeric(), general category N*), llama.cpp as the regexes \p{N} then GPT-2's for
//   tokenizer.ggml.pre "smollm" and "starcoder" (llama-vocab.cpp).
//
// The classes: \p{L} (a letter, general category L*), \p{N} (a number, N*), \s (White_Space),
// read from unicode_classes.hpp (Unicode 16.0, the version of the engines). Case-insensitive
// 's (Oniguruma's Unicode case folding) also matches 'ſ (U+017F LATIN SMALL LETTER LONG S, which
// folds to s); no other non-ASCII character folds to t, r, e, v, m, l or d. A pattern engine
// such as PCRE2 would do the same, but these patterns are fixed, their backtracking reduces to
// "give back one character" or "up to the last line end", and a table lookup per code point
// with an ASCII fast path is several times faster, with no library to link.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "circuitry/text/unicode_classes.hpp"
#include "circuitry/text/utf8.hpp"

namespace circuitry::text {

/// The known pre-tokenization patterns.
enum class PreTokenizer { gpt2, llama3, qwen2, digits_then_gpt2 };

/// The patterns as tokenizer.json spells them.
inline constexpr std::string_view kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

/// The pre-tokenizer whose pattern is exactly `pattern`, if it is one of the three.
inline std::optional<PreTokenizer> pre_tokenizer_of_pattern(std::string_view pattern) {
  if (pattern == kGpt2Pattern) return PreTokenizer::gpt2;
  if (pattern == kLlama3Pattern) return PreTokenizer::llama3;
  if (pattern == kQwen2Pattern) return PreTokenizer::qwen2;
  return std::nullopt;
}

namespace detail {

enum CharClass : int { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3 };

/// The class (other, letter, number, space) of the character at p and its length in bytes.
inline int class_at(const unsigned char* p, std::size_t& len) {
  if (p[0] < 0x80) {
    len = 1;
    return unicode::char_class(p[0]);
  }
  return unicode::char_class(decode_utf8(p, len));
}

/// The end of the run of characters of class `cls` that starts at p.
inline const unsigned char* run_end(int cls, const unsigned char* p, const unsigned char* end) {
  std::size_t len = 0;
  while (p < end && class_at(p, len) == cls) p += len;
  return p;
}

inline bool is_line_end(unsigned char c) { return c == '\r' || c == '\n'; }

/// The end of the GPT-2 pre-token that starts at p (p < end, valid UTF-8).
inline const unsigned char* gpt2_pretoken_end(const unsigned char* p, const unsigned char* end) {
  // 's|'t|'re|'ve|'m|'ll|'d  (case-sensitive, as in GPT-2)
  if (p[0] == '\'' && end - p >= 2) {
    const unsigned char a = p[1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return p + 2;
    if (end - p >= 3) {
      const unsigned char b = p[2];
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return p + 3;
    }
  }
  std::size_t len = 0;
  const int cls = class_at(p, len);
  //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+  without the optional space...
  if (cls != kSpace) return run_end(cls, p + len, end);
  // ...and with it: one ' ' (U+0020 only) glued to the run that follows.
  if (p[0] == ' ' && end - p >= 2) {
    std::size_t len1 = 0;
    const int next = class_at(p + 1, len1);
    if (next != kSpace) return run_end(next, p + 1 + len1, end);
  }
  // \s+(?!\S) | \s+ : the whole run of whitespace at the end of the text; otherwise the run
  // without its last character (which then starts the next pre-token), or one character.
  const unsigned char* last = p;
  const unsigned char* q = p;
  while (q < end && class_at(q, len) == kSpace) last = q, q += len;
  if (q == end || last == p) return q;
  return last;
}

/// The end of a case-insensitive contraction s|t|re|ve|m|ll|d at p (just after the
/// apostrophe), or nullptr.
inline const unsigned char* contraction_end(const unsigned char* p, const unsigned char* end) {
  if (p == end) return nullptr;
  const unsigned char a = p[0] | 0x20;  // ASCII lower case (harmless for the bytes compared below)
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return p + 1;
  if (p[0] == 0xC5 && end - p >= 2 && p[1] == 0xBF) return p + 2;  // U+017F ſ folds to s
  if (end - p >= 2) {
    const unsigned char b = p[1] | 0x20;
    if (((a == 'r' || a == 'v') && b == 'e') || (a == 'l' && b == 'l')) return p + 2;
  }
  return nullptr;
}

/// The end of the Llama 3 (kMaxDigits 3) or Qwen2 (kMaxDigits 1) pre-token that starts at p.
template <int kMaxDigits>
const unsigned char* llama3_pretoken_end(const unsigned char* p, const unsigned char* end) {
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (p[0] == '\'')
    if (const unsigned char* q = contraction_end(p + 1, end)) return q;
  std::size_t len = 0, len1 = 0;
  const int cls = class_at(p, len);
  const unsigned char* next = p + len;
  // [^\r\n\p{L}\p{N}]?\p{L}+ : letters, or one character that is not a letter, a number or a
  // line end followed by letters.
  if (cls == kLetter) return run_end(kLetter, next, end);
  if (cls != kNumber && !is_line_end(p[0]) && next < end && class_at(next, len1) == kLetter)
    return run_end(kLetter, next + len1, end);
  // \p{N}{1,3} (Qwen2: \p{N})
  if (cls == kNumber) {
    for (int n = 1; n < kMaxDigits && next < end && class_at(next, len1) == kNumber; ++n) next += len1;
    return next;
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]* : other symbols, with one optional ' ' before them and the line
  // ends after them.
  const unsigned char* q = nullptr;
  if (cls == kOther) q = run_end(kOther, next, end);
  else if (p[0] == ' ' && next < end && class_at(next, len1) == kOther) q = run_end(kOther, next + len1, end);
  if (q) {
    while (q < end && is_line_end(*q)) ++q;
    return q;
  }
  // Whitespace. \s*[\r\n]+ : \s* takes the whole run and gives characters back until [\r\n]+
  // can match, so the word ends just after the run's last line end. Without one, \s+(?!\S) |
  // \s+ as in GPT-2.
  const unsigned char* last = p;
  const unsigned char* last_line_end = nullptr;
  q = p;
  while (q < end && class_at(q, len) == kSpace) {
    if (is_line_end(*q)) last_line_end = q;
    last = q, q += len;
  }
  if (last_line_end) return last_line_end + 1;
  if (q == end || last == p) return q;
  return last;
}

/// The loop over the pre-tokens, for one pattern's PretokenEnd (a template argument, so that
/// each pattern gets its own loop with the function inlined).
template <auto PretokenEnd, class F>
void for_each_pretoken_of(std::string_view text, F& f) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    const auto* q = PretokenEnd(p, end);
    f(std::string_view(reinterpret_cast<const char*>(p), std::size_t(q - p)));
    p = q;
  }
}

/// Each number character a word, the text between cut by GPT-2's pattern piece by piece.
template <class F>
void for_each_digit_then_gpt2_pretoken(std::string_view text, F& f) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  std::size_t len = 0;
  while (p < end) {
    const auto* q = p;
    while (q < end && class_at(q, len) != kNumber) q += len;
    for_each_pretoken_of<gpt2_pretoken_end>(std::string_view(reinterpret_cast<const char*>(p), std::size_t(q - p)), f);
    if (q == end) return;
    f(std::string_view(reinterpret_cast<const char*>(q), len));
    p = q + len;
  }
}

}  // namespace detail

/// Calls f(word) for each pre-token of text (valid UTF-8), in order; the words tile the text.
template <class F>
void for_each_pretoken(PreTokenizer kind, std::string_view text, F&& f) {
  switch (kind) {
    case PreTokenizer::gpt2: return detail::for_each_pretoken_of<detail::gpt2_pretoken_end>(text, f);
    case PreTokenizer::llama3: return detail::for_each_pretoken_of<detail::llama3_pretoken_end<3>>(text, f);
    case PreTokenizer::qwen2: return detail::for_each_pretoken_of<detail::llama3_pretoken_end<1>>(text, f);
    case PreTokenizer::digits_then_gpt2: return detail::for_each_digit_then_gpt2_pretoken(text, f);
  }
}

}  // namespace circuitry::text
