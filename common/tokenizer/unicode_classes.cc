// UTF-8 decoding and GPT-2's character classes; see unicode_classes.h.
#include "common/tokenizer/unicode_classes.h"

#include <unicode/uchar.h>

#include <array>

#include "absl/strings/str_cat.h"

namespace twist::common {
namespace {

// The classes of the 128 ASCII code points, computed once.
constexpr std::array<CharClass, 128> MakeAsciiTable() {
  std::array<CharClass, 128> table{};
  for (int c = 0; c < 128; ++c) {
    CharClass cls = CharClass::kOther;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      cls = CharClass::kLetter;
    } else if (c >= '0' && c <= '9') {
      cls = CharClass::kNumber;
    } else if ((c >= 0x09 && c <= 0x0D) || c == 0x20) {
      // Not U+001C..U+001F: the `regex` module's \s does not match them.
      cls = CharClass::kWhitespace;
    }
    table[c] = cls;
  }
  return table;
}

constexpr std::array<CharClass, 128> kAsciiClasses = MakeAsciiTable();

}  // namespace

CharClass ClassifyCodePoint(char32_t c) {
  if (c < 128) return kAsciiClasses[c];
  if (c > 0x10FFFF) return CharClass::kOther;
  const UChar32 u = static_cast<UChar32>(c);
  const uint32_t mask = U_GET_GC_MASK(u);
  if (mask & U_GC_L_MASK) return CharClass::kLetter;
  if (mask & U_GC_N_MASK) return CharClass::kNumber;
  if (u_hasBinaryProperty(u, UCHAR_WHITE_SPACE)) return CharClass::kWhitespace;
  return CharClass::kOther;
}

Utf8Result DecodeUtf8(std::string_view text, size_t pos, char32_t* code_point,
                      size_t* length) {
  const auto byte = [&](size_t i) {
    return static_cast<unsigned char>(text[pos + i]);
  };
  const unsigned char b0 = byte(0);
  if (b0 < 0x80) {
    *code_point = b0;
    *length = 1;
    return Utf8Result::kOk;
  }
  size_t need;                         // Total length of the sequence.
  char32_t value;                      // Bits from the lead byte.
  unsigned char lo = 0x80, hi = 0xBF;  // Allowed range of the second byte.
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
    value = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    value = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // No overlong forms.
    if (b0 == 0xED) hi = 0x9F;  // No surrogates.
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    value = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;  // No overlong forms.
    if (b0 == 0xF4) hi = 0x8F;  // Nothing above U+10FFFF.
  } else {
    return Utf8Result::kInvalid;  // Continuation byte, C0, C1 or F5..FF.
  }
  const size_t available = text.size() - pos;
  for (size_t i = 1; i < need; ++i) {
    if (i >= available) return Utf8Result::kTruncated;
    const unsigned char b = byte(i);
    const unsigned char min = i == 1 ? lo : 0x80;
    const unsigned char max = i == 1 ? hi : 0xBF;
    if (b < min || b > max) return Utf8Result::kInvalid;
    value = (value << 6) | (b & 0x3F);
  }
  *code_point = value;
  *length = need;
  return Utf8Result::kOk;
}

absl::Status InvalidUtf8Error(size_t offset) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid UTF-8 at byte offset ", offset));
}

absl::Status ValidateUtf8(std::string_view text, size_t base_offset) {
  size_t pos = 0;
  const size_t n = text.size();
  while (pos < n) {
    // Fast path: eight ASCII bytes at a time.
    while (pos + 8 <= n) {
      uint64_t word = 0;
      for (int i = 0; i < 8; ++i) {
        word |= static_cast<uint64_t>(static_cast<unsigned char>(text[pos + i]))
                << (8 * i);
      }
      if (word & 0x8080808080808080ull) break;
      pos += 8;
    }
    if (pos >= n) break;
    char32_t c;
    size_t len;
    if (DecodeUtf8(text, pos, &c, &len) != Utf8Result::kOk) {
      return InvalidUtf8Error(base_offset + pos);
    }
    pos += len;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::u32string> DecodeUtf8String(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    char32_t c;
    size_t len;
    if (DecodeUtf8(text, pos, &c, &len) != Utf8Result::kOk) {
      return InvalidUtf8Error(pos);
    }
    out.push_back(c);
    pos += len;
  }
  return out;
}

void AppendUtf8(char32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

}  // namespace twist::common
