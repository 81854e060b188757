// A seeded generator of English-like text, so tests and demos need no
// download.
#ifndef TWIST_COMMON_DATA_SYNTHETIC_CORPUS_H_
#define TWIST_COMMON_DATA_SYNTHETIC_CORPUS_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace twist::common {

// Deterministic English-like text: paragraphs of capitalised sentences from
// a small grammar (determiner, adjective, noun with number agreement, verb,
// object, prepositional phrase; statements and the odd question), from a few
// dozen words. A small model learns its structure in minutes, which makes it
// a good end-to-end test corpus. The same seed gives the same text on every
// platform. Stops after the first sentence that brings the text to at least
// `approx_bytes` and ends with '\n', so the result exceeds approx_bytes by
// less than one sentence (under 200 bytes).
std::string GenerateSyntheticCorpus(uint64_t seed, size_t approx_bytes);

}  // namespace twist::common

#endif  // TWIST_COMMON_DATA_SYNTHETIC_CORPUS_H_
