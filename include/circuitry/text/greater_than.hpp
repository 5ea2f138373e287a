#pragma once
// Greater-Than (Hanna, Liu and Variengien 2023, "How does GPT-2 compute greater-than?",
// arXiv:2305.00586).
//
//   clean:     "The war lasted from the year 1732 to the year 17"   -> "33" .. "99"
//   corrupted: "The war lasted from the year 1701 to the year 17"
//
// GPT-2 splits these years into the century with its space and the two last digits: " 1732"
// is [" 17", "32"], so the completion is one two-digit token "ZZ" (no space; every "00" ..
// "99" is one token). A model that knows the war ends after it starts puts its probability
// on ZZ > YY. answer = the tokens "ZZ" for ZZ > YY, wrong = those for ZZ <= YY, metric
// prob_diff = p(ZZ > YY) - p(ZZ <= YY), the paper's probability difference. The corrupted
// prompt starts at YY = 01, where every later year is as good as any other (the paper's "01"
// baseline).
// As in the paper, XX ranges over 11 .. 17 and YY over 02 .. 98, and a year that GPT-2 does
// not split as [" XX", "YY"] (" 1100", " 1105" ... are merged or split otherwise) is drawn
// again; the tokenizer decides. The nouns are the paper's, each one GPT-2 token with its leading
// space; those another vocabulary splits are left out (single_token_words). Extra keys: "task": "greater-than", "noun", "year" (XXYY).
#include <array>
#include <cstdio>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "circuitry/text/induction.hpp"
#include "circuitry/text/text_example.hpp"

namespace circuitry::text {

inline constexpr std::string_view kGreaterThanTemplate = "The [NOUN] lasted from the year [XX][YY] to the year [XX]";
inline constexpr int kGreaterThanFirstCentury = 11, kGreaterThanLastCentury = 17;  // XX
inline constexpr int kGreaterThanFirstYear = 2, kGreaterThanLastYear = 98;          // YY
inline constexpr int kGreaterThanCorruptedYear = 1;                                 // YY of the corrupted prompt

inline constexpr std::array<std::string_view, 120> kGreaterThanNouns = {
    "abduction",   "accord",       "affair",         "agreement",    "appraisal",     "assaults",     "assessment",
    "attack",      "attempts",     "campaign",       "captivity",    "case",          "challenge",    "chaos",
    "clash",       "collaboration", "coma",          "competition",  "confrontation", "consequence",  "conspiracy",
    "construction", "consultation", "contact",       "contract",     "convention",    "cooperation",  "custody",
    "deal",        "decline",      "decrease",       "demonstrations", "development", "disagreement", "disorder",
    "dispute",     "domination",   "dynasty",        "effect",       "effort",        "employment",   "endeavor",
    "engagement",  "epidemic",     "evaluation",     "exchange",     "existence",     "expansion",    "expedition",
    "experiments", "fall",         "fame",           "flights",      "friendship",    "growth",       "hardship",
    "hostility",   "illness",      "impact",         "imprisonment", "improvement",   "incarceration", "increase",
    "insurgency",  "invasion",     "investigation",  "journey",      "kingdom",       "marriage",     "modernization",
    "negotiation", "notoriety",    "obstruction",    "operation",    "order",         "outbreak",     "outcome",
    "overhaul",    "patrols",      "pilgrimage",     "plague",       "plan",          "practice",     "process",
    "program",     "progress",     "project",        "pursuit",      "quest",         "raids",        "reforms",
    "reign",       "relationship", "retaliation",    "riot",         "rise",          "rivalry",      "romance",
    "rule",        "sanctions",    "shift",          "siege",        "slump",         "stature",      "stint",
    "strikes",     "study",        "test",           "testing",      "tests",         "therapy",      "tour",
    "tradition",   "treaty",       "trial",          "trip",         "unemployment",  "voyage",       "warfare",
    "work",
};

namespace detail {

inline std::string two_digits(int v) {
  char buf[4];
  std::snprintf(buf, sizeof buf, "%02d", v);
  return buf;
}

/// True when GPT-2 writes " XXYY" as the two tokens " XX" and "YY".
inline bool splits_as_century_and_year(const Tokenizer& tokenizer, int century, int year) {
  const std::vector<int> ids = tokenizer.encode_continuation(" " + std::to_string(century) + two_digits(year));
  return ids.size() == 2 && tokenizer.token_text(ids[0]) == " " + std::to_string(century) &&
         tokenizer.token_text(ids[1]) == two_digits(year);
}

inline std::string greater_than_prompt(std::string_view noun, int century, int year) {
  std::string s(kGreaterThanTemplate);
  auto put = [&s](std::string_view key, const std::string& value) {
    for (std::size_t at; (at = s.find(key)) != std::string::npos;) s.replace(at, key.size(), value);
  };
  put("[NOUN]", std::string(noun));
  put("[YY]", two_digits(year));
  put("[XX]", std::to_string(century));
  return s;
}

}  // namespace detail

/// n Greater-Than examples (see the top of this file). Deterministic in seed.
inline std::vector<TextExample> make_greater_than(std::size_t n, unsigned seed, const Tokenizer& tokenizer,
                                                  std::vector<std::string>* skipped = nullptr) {
  const auto nouns = single_token_words(tokenizer, kGreaterThanNouns, 1, "greater-than", "nouns", skipped);
  for (int zz = 0; zz < 100; ++zz) word_token(tokenizer, detail::two_digits(zz), "greater-than");
  std::mt19937 rng(seed);
  auto draw = [&rng](int lo, int hi) { return lo + static_cast<int>(circuitry::detail::uniform_below(rng, std::size_t(hi - lo + 1))); };
  std::vector<TextExample> out;
  out.reserve(n);
  for (std::size_t redraws = 0; out.size() < n;) {
    const std::string_view noun = nouns[circuitry::detail::uniform_below(rng, nouns.size())];
    const int century = draw(kGreaterThanFirstCentury, kGreaterThanLastCentury);
    const int year = draw(kGreaterThanFirstYear, kGreaterThanLastYear);
    if (!detail::splits_as_century_and_year(tokenizer, century, year) ||
        !detail::splits_as_century_and_year(tokenizer, century, kGreaterThanCorruptedYear)) {
      // Drawn again, as the paper filters such years; a tokenizer that splits none is an error.
      require(++redraws < 10000, "greater-than: the tokenizer does not split years like \" " + std::to_string(century) +
                                     detail::two_digits(year) + "\" into [\" XX\", \"YY\"]; is it GPT-2's?");
      continue;
    }
    TextExample e;
    e.clean = detail::greater_than_prompt(noun, century, year);
    e.corrupted = detail::greater_than_prompt(noun, century, kGreaterThanCorruptedYear);
    for (int zz = 0; zz < 100; ++zz) (zz > year ? e.answer : e.wrong).push_back(detail::two_digits(zz));
    e.extra = {{"task", "greater-than"}, {"noun", noun}, {"year", century * 100 + year}};
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace circuitry::text
