#pragma once
// Indirect object identification (Wang et al. 2022, "Interpretability in the Wild: a Circuit
// for Indirect Object Identification in GPT-2 small", arXiv:2211.00593).
//
//   clean:     "Then, John and Mary went to the store. John gave a ring to"   -> " Mary"
//   corrupted: "Then, Alan and Kate went to the store. Lisa gave a ring to"   (the "ABC" set)
//
// The prompt names two people, the indirect object IO (once) and the subject S (twice); the
// model should complete with IO. BABA templates name S first ("Then, [B] and [A] ..."), ABBA
// ones IO first ("Then, [A] and [B] ..."); both end "... [B] ... to", the completion [A].
// answer = IO, wrong = S, metric logit_diff (IO minus S), as in the paper.
// The corrupted prompt is the paper's ABC distribution, which ACDC and EAP-IG use: each of
// the three name slots gets its own fresh name (distinct from each other and from IO and S),
// so no name repeats and nothing points at an indirect object.
// Templates, names, places and objects are those of the paper's ioi_dataset.py (as EAP-IG
// ships them); every name, place and object is one GPT-2 token with its leading space. With
// another vocabulary make_ioi leaves out the words that are not one token in it
// (single_token_words), and the draws run over the words left. Extra keys: "task": "ioi", "template" (index into
// kIoiTemplates), "order" ("BABA" or "ABBA").
#include <array>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "circuitry/text/induction.hpp"
#include "circuitry/text/text_example.hpp"

namespace circuitry::text {

// BABA form; the ABBA form swaps the first [B] and [A]. The final [A] is the completion.
inline constexpr std::array<std::string_view, 15> kIoiTemplates = {
    "Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] had a lot of fun at the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] were working at the [PLACE]. [B] decided to give a [OBJECT] to [A]",
    "Then, [B] and [A] were thinking about going to the [PLACE]. [B] wanted to give a [OBJECT] to [A]",
    "Then, [B] and [A] had a long argument, and afterwards [B] said to [A]",
    "After [B] and [A] went to the [PLACE], [B] gave a [OBJECT] to [A]",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give it to [A]",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give the [OBJECT] to [A]",
    "While [B] and [A] were working at the [PLACE], [B] gave a [OBJECT] to [A]",
    "While [B] and [A] were commuting to the [PLACE], [B] gave a [OBJECT] to [A]",
    "After the lunch, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Afterwards, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] had a long argument. Afterwards [B] said to [A]",
    "The [PLACE] [B] and [A] went to had a [OBJECT]. [B] gave it to [A]",
    "Friends [B] and [A] found a [OBJECT] at the [PLACE]. [B] gave it to [A]",
};

inline constexpr std::array<std::string_view, 100> kIoiNames = {
    "Aaron",  "Adam",    "Alan",     "Alex",      "Alice",     "Amy",      "Anderson", "Andre",   "Andrew",  "Andy",
    "Anna",   "Anthony", "Arthur",   "Austin",    "Blake",     "Brandon",  "Brian",    "Carter",  "Charles", "Charlie",
    "Christian", "Christopher", "Clark", "Cole",  "Collins",   "Connor",   "Crew",     "Crystal", "Daniel",  "David",
    "Dean",   "Edward",  "Elizabeth", "Emily",    "Eric",      "Eva",      "Ford",     "Frank",   "George",  "Georgia",
    "Graham", "Grant",   "Henry",    "Ian",       "Jack",      "Jacob",    "Jake",     "James",   "Jamie",   "Jane",
    "Jason",  "Jay",     "Jennifer", "Jeremy",    "Jessica",   "John",     "Jonathan", "Jordan",  "Joseph",  "Joshua",
    "Justin", "Kate",    "Kelly",    "Kevin",     "Kyle",      "Laura",    "Leon",     "Lewis",   "Lisa",    "Louis",
    "Luke",   "Madison", "Marco",    "Marcus",    "Maria",     "Mark",     "Martin",   "Mary",    "Matthew", "Max",
    "Michael", "Michelle", "Morgan", "Patrick",   "Paul",      "Peter",    "Prince",   "Rachel",  "Richard", "River",
    "Robert", "Roman",   "Rose",     "Ruby",      "Russell",   "Ryan",     "Sarah",    "Scott",   "Sean",    "Simon",
};

inline constexpr std::array<std::string_view, 8> kIoiPlaces = {"store",  "garden", "restaurant", "school",
                                                               "hospital", "office", "house",      "station"};
inline constexpr std::array<std::string_view, 8> kIoiObjects = {"ring",  "kiss",     "bone",  "basketball",
                                                                "computer", "necklace", "drink", "snack"};

namespace detail {

/// The template with [PLACE] and [OBJECT] filled in and its name slots ([A] / [B], in order
/// of appearance, the final completion slot dropped) filled from `names`.
inline std::string fill_ioi(std::string_view tmpl, const std::vector<std::string_view>& names, std::string_view place,
                            std::string_view object) {
  std::string out;
  std::size_t slot = 0;
  for (std::size_t i = 0; i < tmpl.size();) {
    if (tmpl.substr(i, 3) == "[A]" || tmpl.substr(i, 3) == "[B]") {
      out += names[slot++];
      i += 3;
    } else if (tmpl.substr(i, 7) == "[PLACE]") {
      out += place;
      i += 7;
    } else if (tmpl.substr(i, 8) == "[OBJECT]") {
      out += object;
      i += 8;
    } else {
      out += tmpl[i++];
    }
  }
  return out;
}

}  // namespace detail

/// n IOI examples (see the top of this file), template, order, names, place and object drawn
/// uniformly from the words that are one token in the tokenizer's vocabulary (those left out
/// are appended to `skipped`). Deterministic in seed.
inline std::vector<TextExample> make_ioi(std::size_t n, unsigned seed, const Tokenizer& tokenizer,
                                         std::vector<std::string>* skipped = nullptr) {
  const auto names = single_token_words(tokenizer, kIoiNames, 5, "ioi", "names", skipped);
  const auto places = single_token_words(tokenizer, kIoiPlaces, 1, "ioi", "places", skipped);
  const auto objects = single_token_words(tokenizer, kIoiObjects, 1, "ioi", "objects", skipped);
  std::mt19937 rng(seed);
  auto pick = [&](const auto& list) { return list[circuitry::detail::uniform_below(rng, list.size())]; };
  std::vector<TextExample> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t t = circuitry::detail::uniform_below(rng, kIoiTemplates.size());
    const bool abba = circuitry::detail::uniform_below(rng, 2) == 1;
    // Five distinct names: IO, S, and the three fresh names of the ABC prompt.
    const std::vector<int> idx = circuitry::detail::distinct_tokens(names.size(), 5, rng);
    const std::string_view io = names[std::size_t(idx[0])], s = names[std::size_t(idx[1])];
    const std::string_view place = pick(places), object = pick(objects);
    std::string_view tmpl = kIoiTemplates[t];
    tmpl = tmpl.substr(0, tmpl.rfind(" [A]"));  // the prompt stops before the completion
    // Name slots in order: BABA = S, IO, S; ABBA = IO, S, S.
    const std::vector<std::string_view> clean_names = abba ? std::vector{io, s, s} : std::vector{s, io, s};
    const std::vector<std::string_view> abc = {names[std::size_t(idx[2])], names[std::size_t(idx[3])], names[std::size_t(idx[4])]};
    TextExample e;
    e.clean = detail::fill_ioi(tmpl, clean_names, place, object);
    e.corrupted = detail::fill_ioi(tmpl, abc, place, object);
    e.answer = {" " + std::string(io)};
    e.wrong = {" " + std::string(s)};
    e.extra = {{"task", "ioi"}, {"template", t}, {"order", abba ? "ABBA" : "BABA"}};
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace circuitry::text
