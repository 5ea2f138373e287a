#pragma once
// The text a Unigram tokenizer (unigram_tokenizer.hpp) segments, made from the text it is given:
//   - tokenizer.json: the normalizers, then the pre-tokenizers, as tokenizers applies them
//     (unigram_config.hpp lists the ones read), giving the words that are segmented one by one;
//   - tokenizer.model: the sentencepiece library's normalizer (normalizer.cc, without a charsmap):
//     remove_extra_whitespaces drops the spaces at the start and the end and keeps one of each run,
//     add_dummy_prefix puts a space before the text, escape_whitespaces writes spaces as '\u2581';
//     the result is segmented whole. Only ' ' is a space there; tabs and newlines stay.
// A continuation (tokenizer.hpp, encode_continuation) is a text that follows other text: what
// applies only at the start of a text is skipped (a leading space's removal, the dummy prefix,
// Metaspace's prefix, Replace "\A...", Strip left, Prepend).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "circuitry/text/unigram_config.hpp"
#include "circuitry/text/utf8.hpp"

namespace circuitry::text::detail {

/// Unicode's White_Space property (Rust's char::is_whitespace, which tokenizers' Strip uses).
inline bool is_white_space(std::uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/// The code point at s[i] (valid UTF-8) and its length.
inline std::uint32_t code_point(std::string_view s, std::size_t i, std::size_t& len) {
  return code_point_at(reinterpret_cast<const unsigned char*>(s.data() + i), len);
}

inline std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  for (std::size_t at = 0;;) {
    const std::size_t hit = text.find(from, at);
    out.append(text.substr(at, hit == std::string_view::npos ? std::string_view::npos : hit - at));
    if (hit == std::string_view::npos) return out;
    out.append(to);
    at = hit + from.size();
  }
}

/// Strips whitespace (or only ' ') at the ends asked for.
inline std::string_view strip(std::string_view text, bool left, bool right, bool spaces_only) {
  auto white = [&](std::uint32_t cp) { return spaces_only ? cp == ' ' : is_white_space(cp); };
  std::size_t begin = 0, end = text.size(), len = 0;
  while (left && begin < end && white(code_point(text, begin, len))) begin += len;
  while (right && end > begin) {
    std::size_t last = end - 1;
    while (last > begin && (static_cast<unsigned char>(text[last]) & 0xC0) == 0x80) --last;
    if (!white(code_point(text, last, len))) break;
    end = last;
  }
  return text.substr(begin, end - begin);
}

/// A tokenizer.json's normalizers applied to one piece of text (between added tokens).
inline std::string normalize(const std::vector<NormalizeStep>& steps, std::string_view text, bool continuation) {
  std::string s(text);
  for (const NormalizeStep& step : steps) {
    switch (step.kind) {
      case NormalizeStep::Kind::replace_all:
        s = replace_all(s, step.from, step.to);
        break;
      case NormalizeStep::Kind::replace_at_start:
        if (!continuation && std::string_view(s).starts_with(step.from)) s = step.to + s.substr(step.from.size());
        break;
      case NormalizeStep::Kind::space_runs: {
        std::string out;
        for (std::size_t i = 0; i < s.size();) {
          std::size_t j = i;
          while (j < s.size() && s[j] == ' ') ++j;
          if (j - i >= 2) out.append(step.to);
          else if (j == i) out.push_back(s[j++]);
          else out.push_back(' ');
          i = j;
        }
        s = std::move(out);
        break;
      }
      case NormalizeStep::Kind::strip:
        s = std::string(strip(s, step.left && !continuation, step.right, step.spaces_only));
        break;
      case NormalizeStep::Kind::prepend:
        if (!continuation && !s.empty()) s = step.to + s;
        break;
    }
  }
  return s;
}

/// A word of the pre-tokenized text, and whether it starts the text (Metaspace prepend_scheme first).
struct Word {
  std::string text;
  bool at_start = false;
};

/// A tokenizer.json's pre-tokenizers applied to one normalized piece.
inline std::vector<Word> pre_tokenize(const std::vector<PreTokenizeStep>& steps, std::string_view text, bool at_start, bool continuation) {
  std::vector<Word> words{{std::string(text), at_start}};
  for (const PreTokenizeStep& step : steps) {
    std::vector<Word> next;
    for (Word& w : words) {
      if (step.kind == PreTokenizeStep::Kind::whitespace_split) {
        for (std::size_t i = 0, len = 0; i < w.text.size();) {
          const std::size_t begin = i;
          while (i < w.text.size() && !is_white_space(code_point(w.text, i, len))) i += len;
          if (i > begin) next.push_back({w.text.substr(begin, i - begin), w.at_start && begin == 0});
          while (i < w.text.size() && is_white_space(code_point(w.text, i, len))) i += len;
        }
      } else if (step.kind == PreTokenizeStep::Kind::isolate) {
        std::size_t done = 0;
        for (std::size_t i = 0; i < w.text.size();) {
          std::size_t match = 0;
          for (const std::string& literal : step.literals)
            if (std::string_view(w.text).substr(i).starts_with(literal)) {
              match = literal.size();
              break;
            }
          if (match == 0) {
            ++i;
            continue;
          }
          if (i > done) next.push_back({w.text.substr(done, i - done), w.at_start && done == 0});
          next.push_back({w.text.substr(i, match), w.at_start && i == 0});
          done = i += match;
        }
        if (done < w.text.size()) next.push_back({w.text.substr(done), w.at_start && done == 0});
      } else {
        std::string s = replace_all(w.text, " ", kSpaceMark);
        const bool put = !continuation && (step.prefix == SpacePrefix::every_piece || (step.prefix == SpacePrefix::first_piece && w.at_start));
        if (put && !std::string_view(s).starts_with(kSpaceMark)) s.insert(0, kSpaceMark);
        if (!step.split) {
          if (!s.empty()) next.push_back({std::move(s), w.at_start});
          continue;
        }
        for (std::size_t begin = 0; begin < s.size();) {  // each word begins at a '\u2581'
          std::size_t end = s.find(kSpaceMark, begin + 1);
          if (end == std::string::npos) end = s.size();
          next.push_back({s.substr(begin, end - begin), w.at_start && begin == 0});
          begin = end;
        }
      }
    }
    words = std::move(next);
  }
  return words;
}

/// The sentencepiece library's normalizer without a charsmap (see the top).
inline std::string sentencepiece_normalize(std::string_view text, const UnigramConfig& spec, bool continuation) {
  const std::string_view space = spec.escape_whitespaces ? kSpaceMark : std::string_view(" ");
  std::string out;
  std::size_t i = 0;
  if (spec.remove_extra_whitespaces && !continuation)
    while (i < text.size() && text[i] == ' ') ++i;
  if (i == text.size()) return out;
  if (spec.add_dummy_prefix && !continuation) out.append(space);
  bool previous_space = spec.remove_extra_whitespaces && !continuation;
  for (; i < text.size(); ++i) {
    if (text[i] != ' ') {
      out.push_back(text[i]);
      previous_space = false;
    } else if (!(previous_space && spec.remove_extra_whitespaces)) {
      out.append(space);
      previous_space = true;
    }
  }
  if (spec.remove_extra_whitespaces)
    while (std::string_view(out).ends_with(space)) out.resize(out.size() - space.size());
  return out;
}

}  // namespace circuitry::text::detail
