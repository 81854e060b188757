// GPT-2's pre-tokenizer: splits text into the pieces ("pre-tokens") that
// byte-pair encoding then encodes one at a time. A hand-written scanner that
// gives exactly the matches of GPT-2's pattern
//
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// under Python's `regex` module (leftmost-first alternation, Unicode classes
// as in unicode_classes.h), without a regex engine.
#ifndef TWIST_COMMON_TOKENIZER_PRETOKENIZER_H_
#define TWIST_COMMON_TOKENIZER_PRETOKENIZER_H_

#include <cstddef>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace twist::common {

// A pre-token: the bytes text[offset, offset + length) of the input.
struct PreToken {
  size_t offset = 0;
  size_t length = 0;

  friend bool operator==(const PreToken& a, const PreToken& b) {
    return a.offset == b.offset && a.length == b.length;
  }
};

// Appends the pre-tokens of `text` to *out, in order. They are non-empty,
// adjacent and cover `text` exactly. At each position the first alternative
// of the pattern that matches wins:
//   1. a case-sensitive contraction 's 't 're 've 'm 'll 'd;
//   2. an optional U+0020 then a maximal run of letters, or of numbers, or of
//      "other" characters (not whitespace, letter or number);
//   3. a run of whitespace: the whole run when it ends the text, otherwise
//      the run minus its last code point when that leaves at least one
//      (the last one then starts the next pre-token, attaching to the word
//      after it when it is a plain space), otherwise the single code point.
// Requires well-formed UTF-8: otherwise returns InvalidArgument naming the
// byte offset of the first ill-formed sequence, and *out holds the pre-tokens
// found before it.
absl::Status AppendPreTokens(std::string_view text, std::vector<PreToken>* out);

// As AppendPreTokens, returning a fresh vector.
absl::StatusOr<std::vector<PreToken>> PreTokenize(std::string_view text);

// The pre-tokens of `text` as views into it (the same contract as
// PreTokenize); convenient for tests and debugging.
absl::StatusOr<std::vector<std::string_view>> PreTokenStrings(
    std::string_view text);

}  // namespace twist::common

#endif  // TWIST_COMMON_TOKENIZER_PRETOKENIZER_H_
