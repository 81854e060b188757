// GPT-2's pre-tokenizer as a hand-written scanner; see pretokenizer.h.
#include "common/tokenizer/pretokenizer.h"

#include <utility>

#include "common/tokenizer/unicode_classes.h"

namespace twist::common {
namespace {

// One decoded code point: its class and its length in bytes.
struct Char {
  CharClass cls;
  size_t length;
};

// Decodes and classifies the code point at text[pos] (pos < text.size()).
// Returns false on ill-formed UTF-8 (truncated counts as ill-formed).
inline bool ReadChar(std::string_view text, size_t pos, Char* out) {
  const unsigned char b = static_cast<unsigned char>(text[pos]);
  if (b < 0x80) {
    out->cls = ClassifyCodePoint(b);
    out->length = 1;
    return true;
  }
  char32_t c;
  if (DecodeUtf8(text, pos, &c, &out->length) != Utf8Result::kOk) {
    return false;
  }
  out->cls = ClassifyCodePoint(c);
  return true;
}

// The length of the contraction ('s 't 're 've 'm 'll 'd) at text[pos], or 0.
inline size_t ContractionLength(std::string_view text, size_t pos) {
  if (text[pos] != '\'' || pos + 1 >= text.size()) return 0;
  const char c1 = text[pos + 1];
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  if (pos + 2 >= text.size()) return 0;
  const char c2 = text[pos + 2];
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') ||
      (c1 == 'l' && c2 == 'l')) {
    return 3;
  }
  return 0;
}

}  // namespace

absl::Status AppendPreTokens(std::string_view text,
                             std::vector<PreToken>* out) {
  const size_t n = text.size();
  size_t pos = 0;
  while (pos < n) {
    // 1. Contractions come first at any position.
    if (const size_t len = ContractionLength(text, pos); len > 0) {
      out->push_back({pos, len});
      pos += len;
      continue;
    }
    Char first;
    if (!ReadChar(text, pos, &first)) return InvalidUtf8Error(pos);

    // 2. ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional plain space
    // then a maximal run of one non-whitespace class.
    size_t run_start = pos;  // Where the run of one class begins.
    Char run_char = first;
    if (text[pos] == ' ' && pos + 1 < n) {
      Char next;
      if (!ReadChar(text, pos + 1, &next)) return InvalidUtf8Error(pos + 1);
      if (next.cls != CharClass::kWhitespace) {
        run_start = pos + 1;
        run_char = next;
      }
    }
    if (run_char.cls != CharClass::kWhitespace) {
      size_t end = run_start + run_char.length;
      while (end < n) {
        Char c;
        if (!ReadChar(text, end, &c)) return InvalidUtf8Error(end);
        if (c.cls != run_char.cls) break;
        end += c.length;
      }
      out->push_back({pos, end - pos});
      pos = end;
      continue;
    }

    // 3. `\s+(?!\S)|\s+`: a maximal whitespace run [pos, end). When a
    // non-space follows it, `\s+(?!\S)` backtracks to leave the run's last
    // code point, which needs a run of two or more; a single whitespace code
    // point before a non-space is matched by `\s+` alone.
    size_t end = pos + first.length;
    size_t last = pos;  // Start of the run's last code point.
    size_t count = 1;
    bool followed_by_non_space = false;
    while (end < n) {
      Char c;
      if (!ReadChar(text, end, &c)) return InvalidUtf8Error(end);
      if (c.cls != CharClass::kWhitespace) {
        followed_by_non_space = true;
        break;
      }
      last = end;
      end += c.length;
      ++count;
    }
    if (followed_by_non_space && count >= 2) end = last;
    out->push_back({pos, end - pos});
    pos = end;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PreToken>> PreTokenize(std::string_view text) {
  std::vector<PreToken> tokens;
  absl::Status status = AppendPreTokens(text, &tokens);
  if (!status.ok()) return status;
  return tokens;
}

absl::StatusOr<std::vector<std::string_view>> PreTokenStrings(
    std::string_view text) {
  absl::StatusOr<std::vector<PreToken>> tokens = PreTokenize(text);
  if (!tokens.ok()) return tokens.status();
  std::vector<std::string_view> views;
  views.reserve(tokens->size());
  for (const PreToken& t : *tokens) {
    views.push_back(text.substr(t.offset, t.length));
  }
  return views;
}

}  // namespace twist::common
