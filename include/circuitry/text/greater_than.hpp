#pragma once
// Greater-Than (Hanna, Liu and Variengien 2023, "How does GPT-2 compute greater-than?",
// arXiv:2305.00586), in one of two forms, as the tokenizer splits years (DESIGN.md section 3).
//
// Two-digit form (GPT-2, and any tokenizer that splits years so):
//   clean:     "The war lasted from the year 1732 to the year 17"   -> "33" .. "99"
//   corrupted: "The war lasted from the year 1701 to the year 17"
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
//
// Decisive-digit form (tokenizers that write numbers in single digits, SmolLM2, StarCoder2,
// Qwen2, Llama 2, or in groups of up to three, Llama 3: " 1732" is [" ", "1", "7", "3", "2"] or
// [" ", "173", "2"]; no two-digit token ever follows " XX"). The prompt runs on to the end year's
// decade, the first digit Y1 of YY, and the answer is its last digit, a token of its own:
//   clean:     "The war lasted from the year 1732 to the year 173"  -> "3" .. "9"
//   corrupted: "The war lasted from the year 1701 to the year 173"
// answer = the digits d > Y2 (the end year XX Y1 d later than XX YY), wrong = d <= Y2, prob_diff
// as above: the paper's comparison, within the decade. YY = 10 Y1 + Y2 with Y1 in 1 .. 9 (so
// the corrupted 01 lies in an earlier decade and every digit is as good as any other there) and
// Y2 in 0 .. 8 (Y2 = 9 leaves no digit greater); both drawn uniformly. Drawn again unless
// " XXYY" tokenizes as " XXY1" followed by the one token "Y2" and " XX01" has as many tokens.
// Chosen when the two-digit form has no year (some "ZZ" is not one token, or no " XXYY" splits
// as [" XX", "YY"]); a tokenizer fitting neither is an Error naming both. Extra keys as above
// plus "form": "decisive-digit".
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

/// Whether the tokenizer takes the two-digit form: every "00" .. "99" one token and some year of
/// the ranges split as [" XX", "YY"], with its corrupted year.
inline bool greater_than_two_digit_form(const Tokenizer& tokenizer) {
  for (int zz = 0; zz < 100; ++zz)
    if (tokenizer.encode_continuation(detail::two_digits(zz)).size() != 1) return false;
  for (int century = kGreaterThanFirstCentury; century <= kGreaterThanLastCentury; ++century)
    if (detail::splits_as_century_and_year(tokenizer, century, kGreaterThanCorruptedYear))
      for (int year = kGreaterThanFirstYear; year <= kGreaterThanLastYear; ++year)
        if (detail::splits_as_century_and_year(tokenizer, century, year)) return true;
  return false;
}

namespace detail {

/// The decisive-digit form's test: " XXYY" is " XX" + Y1 followed by the one token Y2, and the
/// corrupted " XX01" is as many tokens.
inline bool last_digit_alone(const Tokenizer& tokenizer, int century, int year) {
  const std::string xx = " " + std::to_string(century);
  std::vector<int> prefix = tokenizer.encode_continuation(xx + std::to_string(year / 10));
  const std::vector<int> whole = tokenizer.encode_continuation(xx + two_digits(year));
  const std::vector<int> last = tokenizer.encode_continuation(std::to_string(year % 10));
  if (last.size() != 1) return false;
  prefix.push_back(last[0]);
  return whole == prefix && tokenizer.encode_continuation(xx + two_digits(kGreaterThanCorruptedYear)).size() == whole.size();
}

inline std::string token_list(const Tokenizer& tokenizer, const std::vector<int>& ids) {
  std::string out = "[";
  for (std::size_t i = 0; i < ids.size(); ++i)
    out += (i ? ", " : "") + nlohmann::json(tokenizer.token_text(ids[i])).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return out + "]";
}

}  // namespace detail

/// n Greater-Than examples (see the top of this file). Deterministic in seed.
inline std::vector<TextExample> make_greater_than(std::size_t n, unsigned seed, const Tokenizer& tokenizer,
                                                  std::vector<std::string>* skipped = nullptr) {
  const auto nouns = single_token_words(tokenizer, kGreaterThanNouns, 1, "greater-than", "nouns", skipped);
  const bool two_digit = greater_than_two_digit_form(tokenizer);
  if (!two_digit)
    for (int d = 0; d < 10; ++d)
      require(tokenizer.encode_continuation(std::to_string(d)).size() == 1,
              "greater-than: the tokenizer splits years neither as GPT-2 does ([\" XX\", \"YY\"]: \" 1732\" is " +
                  detail::token_list(tokenizer, tokenizer.encode_continuation(" 1732")) +
                  ") nor with each digit a token (the decisive-digit form: \"" + std::to_string(d) + "\" is " +
                  detail::token_list(tokenizer, tokenizer.encode_continuation(std::to_string(d))) + ")");
  std::mt19937 rng(seed);
  auto draw = [&rng](int lo, int hi) { return lo + static_cast<int>(circuitry::detail::uniform_below(rng, std::size_t(hi - lo + 1))); };
  std::vector<TextExample> out;
  out.reserve(n);
  for (std::size_t redraws = 0; out.size() < n;) {
    const std::string_view noun = nouns[circuitry::detail::uniform_below(rng, nouns.size())];
    const int century = draw(kGreaterThanFirstCentury, kGreaterThanLastCentury);
    TextExample e;
    if (two_digit) {
      const int year = draw(kGreaterThanFirstYear, kGreaterThanLastYear);
      if (!detail::splits_as_century_and_year(tokenizer, century, year) ||
          !detail::splits_as_century_and_year(tokenizer, century, kGreaterThanCorruptedYear)) {
        ++redraws;  // drawn again, as the paper filters such years (greater_than_two_digit_form found some)
        continue;
      }
      e.clean = detail::greater_than_prompt(noun, century, year);
      e.corrupted = detail::greater_than_prompt(noun, century, kGreaterThanCorruptedYear);
      for (int zz = 0; zz < 100; ++zz) (zz > year ? e.answer : e.wrong).push_back(detail::two_digits(zz));
      e.extra = {{"task", "greater-than"}, {"noun", noun}, {"year", century * 100 + year}};
    } else {
      const int decade = draw(1, 9), digit = draw(0, 8), year = 10 * decade + digit;
      if (!detail::last_digit_alone(tokenizer, century, year)) {
        require(++redraws < 10000, "greater-than: the tokenizer does not split years like \" " + std::to_string(century) +
                                       detail::two_digits(year) + "\" " +
                                       detail::token_list(tokenizer, tokenizer.encode_continuation(" " + std::to_string(century) + detail::two_digits(year))) +
                                       " into [\" XX\", \"YY\"] (the two-digit form) nor with the last digit a token of its own "
                                       "(the decisive-digit form)");
        continue;
      }
      const std::string end = std::to_string(decade);
      e.clean = detail::greater_than_prompt(noun, century, year) + end;
      e.corrupted = detail::greater_than_prompt(noun, century, kGreaterThanCorruptedYear) + end;
      for (int d = 0; d < 10; ++d) (d > digit ? e.answer : e.wrong).push_back(std::to_string(d));
      e.extra = {{"task", "greater-than"}, {"noun", noun}, {"year", century * 100 + year}, {"form", "decisive-digit"}};
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace circuitry::text
