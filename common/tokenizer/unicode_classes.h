// UTF-8 decoding and the Unicode character classes that GPT-2's pre-tokenizer
// distinguishes: letters (\p{L}), numbers (\p{N}), whitespace (\s) and
// everything else. The definitions follow Python's `regex` module in Unicode
// mode, which OpenAI's GPT-2 encoder uses, so that pre-tokens split exactly
// where the reference splits them.
#ifndef TWIST_COMMON_TOKENIZER_UNICODE_CLASSES_H_
#define TWIST_COMMON_TOKENIZER_UNICODE_CLASSES_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace twist::common {

// The class of a code point as the GPT-2 pattern sees it. The classes are
// disjoint: no letter or number is whitespace.
enum class CharClass : uint8_t {
  // Neither letter, number nor whitespace: punctuation, symbols, marks,
  // controls (including U+001C..U+001F and U+FEFF), unassigned and private
  // use code points.
  kOther = 0,
  // General category L* (Lu, Ll, Lt, Lm, Lo): \p{L}.
  kLetter = 1,
  // General category N* (Nd, Nl, No): \p{N}.
  kNumber = 2,
  // \s as Python's `regex` module defines it in Unicode mode: exactly the
  // Unicode White_Space property, i.e. U+0009..U+000D, U+0020, U+0085,
  // U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
  // Note U+001C..U+001F are NOT whitespace here even though Python's
  // str.isspace() says they are (`regex` does not match them with \s), and
  // U+FEFF is not whitespace (JavaScript's \s says it is).
  kWhitespace = 3,
};

// Classifies a code point. ASCII is answered from a table; anything above
// U+007F asks ICU (the Unicode version of the installed ICU). Values above
// U+10FFFF and surrogates are kOther.
CharClass ClassifyCodePoint(char32_t c);

inline bool IsLetter(char32_t c) {
  return ClassifyCodePoint(c) == CharClass::kLetter;
}
inline bool IsNumber(char32_t c) {
  return ClassifyCodePoint(c) == CharClass::kNumber;
}
inline bool IsWhitespace(char32_t c) {
  return ClassifyCodePoint(c) == CharClass::kWhitespace;
}

// The outcome of decoding one UTF-8 sequence.
enum class Utf8Result {
  kOk,         // A well-formed sequence.
  kInvalid,    // Ill-formed: bad lead byte, bad continuation byte, overlong
               // form, surrogate, or above U+10FFFF.
  kTruncated,  // The bytes up to the end of the input are a valid prefix of a
               // sequence, but the sequence is incomplete. A streaming caller
               // waits for more input; at the end of the input it is invalid.
};

// Decodes the UTF-8 sequence that starts at text[pos] (requires
// pos < text.size()). On kOk sets *code_point and *length (1..4); otherwise
// leaves them unspecified. Well-formedness follows the Unicode standard
// (Table 3-7): no overlong forms, no surrogates, nothing above U+10FFFF.
Utf8Result DecodeUtf8(std::string_view text, size_t pos, char32_t* code_point,
                      size_t* length);

// The InvalidArgument status reported for ill-formed UTF-8 whose sequence
// starts at byte `offset`; the message names the offset.
absl::Status InvalidUtf8Error(size_t offset);

// OK when `text` is well-formed UTF-8; otherwise InvalidArgument naming the
// byte offset (plus `base_offset`) of the first ill-formed sequence.
absl::Status ValidateUtf8(std::string_view text, size_t base_offset = 0);

// Decodes well-formed UTF-8 into code points; InvalidArgument naming the byte
// offset of the first ill-formed sequence otherwise.
absl::StatusOr<std::u32string> DecodeUtf8String(std::string_view text);

// Appends the UTF-8 encoding of `c` (requires a scalar value: at most
// U+10FFFF and not a surrogate) to *out.
void AppendUtf8(char32_t c, std::string* out);

}  // namespace twist::common

#endif  // TWIST_COMMON_TOKENIZER_UNICODE_CLASSES_H_
