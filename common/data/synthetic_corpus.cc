#include "common/data/synthetic_corpus.h"

#include "absl/strings/str_cat.h"
#include "common/base/rng.h"

namespace twist::common {
namespace {

// The synthetic corpus's grammar. Every word starts with a consonant so "a"
// never needs to become "an".
struct Noun {
  const char* singular;
  const char* plural;
};
constexpr Noun kNouns[] = {
    {"cat", "cats"},       {"dog", "dogs"},         {"bird", "birds"},
    {"farmer", "farmers"}, {"teacher", "teachers"}, {"child", "children"},
    {"river", "rivers"},   {"city", "cities"},      {"garden", "gardens"},
    {"story", "stories"},  {"king", "kings"},       {"baker", "bakers"},
};
// Present tense: third person singular, then the base form.
struct Verb {
  const char* singular;
  const char* base;
};
constexpr Verb kTransitive[] = {
    {"sees", "see"},       {"finds", "find"},         {"likes", "like"},
    {"follows", "follow"}, {"carries", "carry"},      {"watches", "watch"},
    {"builds", "build"},   {"remembers", "remember"},
};
constexpr Verb kIntransitive[] = {
    {"sleeps", "sleep"}, {"sings", "sing"},   {"waits", "wait"},
    {"runs", "run"},     {"laughs", "laugh"},
};
constexpr const char* kSingularDeterminers[] = {"the", "a", "every", "this",
                                                "that"};
constexpr const char* kPluralDeterminers[] = {"the", "some", "many", "these",
                                              "two"};
constexpr const char* kAdjectives[] = {"small",  "quiet", "red",   "happy",
                                       "green",  "brave", "tired", "clever",
                                       "gentle", "busy",  "young", "patient"};
constexpr const char* kPrepositions[] = {"near",   "behind", "under",
                                         "beside", "with",   "past"};
constexpr const char* kAdverbs[] = {"today", "at night", "again", "slowly",
                                    "every morning"};

template <typename T, size_t N>
const T& Pick(const T (&choices)[N], SplitMix64& rng) {
  return choices[rng.UniformBelow(N)];
}

// A noun phrase: determiner, an adjective one time in three, noun.
std::string NounPhrase(bool plural, SplitMix64& rng) {
  std::string phrase =
      plural ? Pick(kPluralDeterminers, rng) : Pick(kSingularDeterminers, rng);
  if (rng.UniformBelow(3) == 0)
    absl::StrAppend(&phrase, " ", Pick(kAdjectives, rng));
  const Noun& noun = Pick(kNouns, rng);
  absl::StrAppend(&phrase, " ", plural ? noun.plural : noun.singular);
  return phrase;
}

std::string Sentence(SplitMix64& rng) {
  const bool plural = rng.UniformBelow(2) == 1;
  std::string sentence;
  const uint64_t form = rng.UniformBelow(10);
  if (form < 5) {
    // Subject, transitive verb agreeing with it, object, sometimes a place.
    const Verb& verb = Pick(kTransitive, rng);
    sentence = absl::StrCat(NounPhrase(plural, rng), " ",
                            plural ? verb.base : verb.singular, " ",
                            NounPhrase(rng.UniformBelow(2) == 1, rng));
    if (rng.UniformBelow(3) == 0) {
      absl::StrAppend(&sentence, " ", Pick(kPrepositions, rng), " ",
                      NounPhrase(rng.UniformBelow(2) == 1, rng));
    }
    sentence += ".";
  } else if (form < 8) {
    // Subject, intransitive verb, a place or a time.
    const Verb& verb = Pick(kIntransitive, rng);
    sentence = absl::StrCat(NounPhrase(plural, rng), " ",
                            plural ? verb.base : verb.singular);
    if (rng.UniformBelow(2) == 0) {
      absl::StrAppend(&sentence, " ", Pick(kPrepositions, rng), " ",
                      NounPhrase(rng.UniformBelow(2) == 1, rng));
    } else {
      absl::StrAppend(&sentence, " ", Pick(kAdverbs, rng));
    }
    sentence += ".";
  } else {
    // A question: does/do agrees with the subject; the verb takes its base.
    const Verb& verb = Pick(kTransitive, rng);
    sentence = absl::StrCat(plural ? "do " : "does ", NounPhrase(plural, rng),
                            " ", verb.base, " ",
                            NounPhrase(rng.UniformBelow(2) == 1, rng), "?");
  }
  sentence[0] = static_cast<char>(sentence[0] - 'a' + 'A');
  return sentence;
}

}  // namespace

std::string GenerateSyntheticCorpus(uint64_t seed, size_t approx_bytes) {
  SplitMix64 rng(DeriveSeed({0x53594e5448ULL /* "SYNTH" */, seed}));
  std::string text;
  text.reserve(approx_bytes + 256);
  // Paragraphs of 3 to 6 sentences, separated by newlines.
  while (text.size() < approx_bytes) {
    const uint64_t sentences = 3 + rng.UniformBelow(4);
    for (uint64_t s = 0; s < sentences && text.size() < approx_bytes; ++s) {
      if (s > 0) text.push_back(' ');
      text += Sentence(rng);
    }
    text.push_back('\n');
  }
  return text;
}

}  // namespace twist::common
