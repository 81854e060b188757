// GPT-2's byte-pair encoder: loading encoder.json / vocab.bpe, encoding and
// decoding; see gpt2_tokenizer.h.
#include "common/tokenizer/gpt2_tokenizer.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <queue>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/tokenizer/unicode_classes.h"
#include "nlohmann/json.hpp"

namespace twist::common {

namespace {

// A merge rule "A B": its rank (line order) and the id of the token AB.
struct Merge {
  int rank;
  int merged_id;
};

constexpr int kNoRank = INT_MAX;

// Debian's Abseil has its own absl::string_view (not std::string_view).
inline absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

inline uint64_t PairKey(int left, int right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
         static_cast<uint32_t>(right);
}

std::array<char32_t, 256> MakeByteToUnicode() {
  std::array<char32_t, 256> table{};
  const auto printable = [](int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) ||
           (b >= 0xAE && b <= 0xFF);
  };
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    table[b] = printable(b) ? static_cast<char32_t>(b) : next++;
  }
  return table;
}

// Where to get the files, for NotFound messages.
std::string FetchHint(const std::string& dir) {
  return absl::StrCat(
      "; fetch GPT-2's tokenizer files with `bash deploy/fetch-tokenizer.sh ",
      dir.empty() ? std::string("DIR") : dir,
      "` (from the repository root), or pass --tokenizer_dir=DIR naming a "
      "folder that holds encoder.json and vocab.bpe");
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path,
                                          const std::string& dir) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      return absl::NotFoundError(absl::StrCat("GPT-2 tokenizer file ", path,
                                              " not found", FetchHint(dir)));
    }
    if (err == EACCES || err == EPERM) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot open ", path, ": ", std::strerror(err)));
    }
    return absl::UnavailableError(
        absl::StrCat("cannot open ", path, ": ", std::strerror(err)));
  }
  std::string content;
  char buffer[1 << 16];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
    content.append(buffer, got);
  }
  const bool failed = std::ferror(file) != 0;
  const int err = errno;
  std::fclose(file);
  if (failed) {
    return absl::UnavailableError(
        absl::StrCat("cannot read ", path, ": ", std::strerror(err)));
  }
  return content;
}

// Decodes a token string of encoder.json / vocab.bpe (GPT-2's byte alphabet)
// into raw bytes. Returns false when a code point is not in the alphabet or
// the string is not well-formed UTF-8.
bool AlphabetToBytes(std::string_view token,
                     const absl::flat_hash_map<char32_t, uint8_t>& to_byte,
                     std::string* bytes) {
  bytes->clear();
  size_t pos = 0;
  while (pos < token.size()) {
    char32_t c;
    size_t len;
    if (DecodeUtf8(token, pos, &c, &len) != Utf8Result::kOk) return false;
    const auto it = to_byte.find(c);
    if (it == to_byte.end()) return false;
    bytes->push_back(static_cast<char>(it->second));
    pos += len;
  }
  return true;
}

// Token string (in GPT-2's byte alphabet) -> id, as encoder.json gives it.
using TokenIds = absl::flat_hash_map<std::string, int>;

// Merge rules by PairKey(left, right).
using MergeTable = absl::flat_hash_map<uint64_t, Merge>;

// Parses encoder.json (read from `path`) into `json`: a non-empty JSON object
// of at most INT_MAX tokens, else DataLoss.
absl::Status ParseEncoderJson(const std::string& text, const std::string& path,
                              nlohmann::json* json) {
  try {
    *json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(
        absl::StrCat(path, ": malformed JSON: ", e.what()));
  }
  if (!json->is_object() || json->empty()) {
    return absl::DataLossError(absl::StrCat(
        path, ": expected a non-empty JSON object of token -> id"));
  }
  if (json->size() > static_cast<size_t>(INT_MAX)) {
    return absl::DataLossError(absl::StrCat(path, ": too many tokens"));
  }
  return absl::OkStatus();
}

// Reads the token -> id object of encoder.json (from ParseEncoderJson). The
// ids of N tokens must be 0..N-1, each used once, and every token must be in
// GPT-2's byte alphabet; else DataLoss. Fills `id_to_bytes` (the raw bytes
// of each id) and `token_to_id`.
absl::Status ReadEncoderTokens(const nlohmann::json& json,
                               const std::string& path,
                               std::vector<std::string>* id_to_bytes,
                               TokenIds* token_to_id) {
  absl::flat_hash_map<char32_t, uint8_t> to_byte;
  for (int b = 0; b < 256; ++b) to_byte[Gpt2ByteToUnicode()[b]] = b;
  const int vocab_size = static_cast<int>(json.size());
  id_to_bytes->resize(vocab_size);
  std::vector<bool> seen(vocab_size, false);
  token_to_id->reserve(vocab_size);
  std::string bytes;
  for (const auto& [token, value] : json.items()) {
    if (!value.is_number_integer()) {
      return absl::DataLossError(
          absl::StrCat(path, ": the id of token \"", token,
                       "\" is not an integer: ", value.dump()));
    }
    const int64_t id = value.get<int64_t>();
    if (id < 0 || id >= vocab_size) {
      return absl::DataLossError(absl::StrCat(
          path, ": the id ", id, " of token \"", token, "\" is outside [0, ",
          vocab_size, "); ids must be 0..N-1 for N tokens"));
    }
    if (seen[id]) {
      return absl::DataLossError(absl::StrCat(
          path, ": id ", id, " is used twice (again by \"", token, "\")"));
    }
    seen[id] = true;
    if (!AlphabetToBytes(token, to_byte, &bytes)) {
      return absl::DataLossError(
          absl::StrCat(path, ": token \"", token,
                       "\" has a character outside GPT-2's byte alphabet"));
    }
    (*id_to_bytes)[id] = bytes;
    token_to_id->emplace(token, static_cast<int>(id));
  }
  return absl::OkStatus();
}

// Fills `byte_to_id` with the id of each byte's single-byte token; DataLoss
// naming encoder.json's `path` when one is missing.
absl::Status FindByteIds(const TokenIds& token_to_id, const std::string& path,
                         std::array<int, 256>* byte_to_id) {
  for (int b = 0; b < 256; ++b) {
    std::string single;
    AppendUtf8(Gpt2ByteToUnicode()[b], &single);
    const auto it = token_to_id.find(single);
    if (it == token_to_id.end()) {
      return absl::DataLossError(absl::StrCat(
          path, ": the single-byte token for byte 0x",
          absl::Hex(b, absl::kZeroPad2), " (\"", single, "\") is missing"));
    }
    (*byte_to_id)[b] = it->second;
  }
  return absl::OkStatus();
}

// The id of <|endoftext|>; DataLoss naming encoder.json's `path` when the
// vocabulary lacks it.
absl::StatusOr<int> FindEndOfTextId(const TokenIds& token_to_id,
                                    const std::string& path) {
  const auto eot = token_to_id.find(std::string(kEndOfTextToken));
  if (eot == token_to_id.end()) {
    return absl::DataLossError(
        absl::StrCat(path, ": no \"", AbslView(kEndOfTextToken), "\" token"));
  }
  return eot->second;
}

// A DataLoss error about line `line_number` of vocab.bpe at `path`.
absl::Status MergesError(const std::string& path, int line_number,
                         const std::string& what) {
  return absl::DataLossError(
      absl::StrCat(path, " line ", line_number, ": ", what));
}

// Removes the first line from `*rest` and returns it, without its "\n" or
// "\r\n".
std::string_view TakeLine(std::string_view* rest) {
  const size_t newline = rest->find('\n');
  std::string_view line = rest->substr(0, newline);
  *rest = newline == std::string_view::npos ? std::string_view()
                                            : rest->substr(newline + 1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// Adds the merge "A B" of `line` (line `line_number` of vocab.bpe at `path`)
// to `merges` with `rank`. DataLoss when the line is not two tokens separated
// by one space, when A, B or AB is not a token, or when the merge is already
// there.
absl::Status AddMerge(std::string_view line, int rank,
                      const TokenIds& token_to_id, const std::string& path,
                      int line_number, MergeTable* merges) {
  const size_t space = line.find(' ');
  if (line.empty() || space == 0 || space == std::string_view::npos ||
      space + 1 == line.size() ||
      line.find(' ', space + 1) != std::string_view::npos) {
    return MergesError(
        path, line_number,
        absl::StrCat("expected a merge \"A B\", got \"", AbslView(line), "\""));
  }
  const std::string left(line.substr(0, space));
  const std::string right(line.substr(space + 1));
  const auto left_it = token_to_id.find(left);
  const auto right_it = token_to_id.find(right);
  const std::string merged = left + right;
  const auto merged_it = token_to_id.find(merged);
  if (left_it == token_to_id.end() || right_it == token_to_id.end() ||
      merged_it == token_to_id.end()) {
    return MergesError(path, line_number,
                       absl::StrCat("merge \"", AbslView(line), "\": \"",
                                    left_it == token_to_id.end()    ? left
                                    : right_it == token_to_id.end() ? right
                                                                    : merged,
                                    "\" is not a token of encoder.json"));
  }
  const bool inserted =
      merges
          ->emplace(PairKey(left_it->second, right_it->second),
                    Merge{rank, merged_it->second})
          .second;
  if (!inserted) {
    return MergesError(
        path, line_number,
        absl::StrCat("duplicate merge \"", AbslView(line), "\""));
  }
  return absl::OkStatus();
}

// Reads vocab.bpe (`text`, from `path`): a "#version ..." line, then one
// merge "A B" per line, ranked by their order. DataLoss as for AddMerge, or
// when the file is empty or lacks the header.
absl::Status ReadMerges(const std::string& text, const std::string& path,
                        const TokenIds& token_to_id, MergeTable* merges) {
  std::string_view rest = text;
  int line_number = 0;
  int rank = 0;
  while (!rest.empty()) {
    ++line_number;
    const std::string_view line = TakeLine(&rest);
    if (line_number == 1) {
      if (line.substr(0, 8) != "#version") {
        return MergesError(path, line_number,
                           "expected a \"#version\" header line");
      }
      continue;
    }
    absl::Status status =
        AddMerge(line, rank, token_to_id, path, line_number, merges);
    if (!status.ok()) return status;
    ++rank;
  }
  if (line_number == 0) {
    return absl::DataLossError(absl::StrCat(
        path, " line 1: empty file; expected a \"#version\" header"));
  }
  return absl::OkStatus();
}

}  // namespace

struct Gpt2Tokenizer::Vocab {
  std::vector<std::string> id_to_bytes;  // Raw bytes of each token.
  std::array<int, 256> byte_to_id{};     // The single-byte tokens.
  MergeTable merges;                     // By PairKey(left, right).
  int eot_id = -1;

  Merge Find(int left, int right) const {
    const auto it = merges.find(PairKey(left, right));
    return it == merges.end() ? Merge{kNoRank, -1} : it->second;
  }
};

const std::array<char32_t, 256>& Gpt2ByteToUnicode() {
  static const std::array<char32_t, 256> table = MakeByteToUnicode();
  return table;
}

std::string Gpt2Tokenizer::DefaultDir() {
  if (const char* dir = std::getenv("TWIST_TOKENIZER_DIR");
      dir != nullptr && dir[0] != '\0') {
    return dir;
  }
  return "data/tokenizers/gpt2";
}

absl::StatusOr<Gpt2Tokenizer> Gpt2Tokenizer::Load(const std::string& dir) {
  const std::string prefix = dir.empty() || dir.back() == '/' ? dir : dir + "/";
  const std::string encoder_path = prefix + "encoder.json";
  const std::string merges_path = prefix + "vocab.bpe";

  absl::StatusOr<std::string> encoder_text = ReadWholeFile(encoder_path, dir);
  if (!encoder_text.ok()) return encoder_text.status();
  absl::StatusOr<std::string> merges_text = ReadWholeFile(merges_path, dir);
  if (!merges_text.ok()) return merges_text.status();

  auto vocab = std::make_shared<Vocab>();
  nlohmann::json json;
  absl::Status status = ParseEncoderJson(*encoder_text, encoder_path, &json);
  if (!status.ok()) return status;
  TokenIds token_to_id;
  status =
      ReadEncoderTokens(json, encoder_path, &vocab->id_to_bytes, &token_to_id);
  if (!status.ok()) return status;
  status = FindByteIds(token_to_id, encoder_path, &vocab->byte_to_id);
  if (!status.ok()) return status;
  absl::StatusOr<int> eot_id = FindEndOfTextId(token_to_id, encoder_path);
  if (!eot_id.ok()) return eot_id.status();
  vocab->eot_id = *eot_id;

  status = ReadMerges(*merges_text, merges_path, token_to_id, &vocab->merges);
  if (!status.ok()) return status;
  return Gpt2Tokenizer(std::move(vocab));
}

Gpt2Tokenizer::Gpt2Tokenizer(std::shared_ptr<const Vocab> vocab)
    : vocab_(std::move(vocab)) {}

Gpt2Tokenizer::Gpt2Tokenizer(const Gpt2Tokenizer& other)
    : vocab_(other.vocab_), heap_threshold_(other.heap_threshold_) {}

Gpt2Tokenizer& Gpt2Tokenizer::operator=(const Gpt2Tokenizer& other) {
  if (this != &other) {
    vocab_ = other.vocab_;
    heap_threshold_ = other.heap_threshold_;
    cache_.clear();
  }
  return *this;
}

int Gpt2Tokenizer::vocab_size() const {
  return static_cast<int>(vocab_->id_to_bytes.size());
}

int Gpt2Tokenizer::eot_id() const { return vocab_->eot_id; }

void Gpt2Tokenizer::set_heap_threshold_for_testing(size_t bytes) {
  heap_threshold_ = bytes;
  cache_.clear();
}

absl::StatusOr<std::vector<int>> Gpt2Tokenizer::Encode(std::string_view text) {
  std::vector<int> ids;
  absl::Status status = EncodeAppend(text, &ids);
  if (!status.ok()) return status;
  return ids;
}

absl::Status Gpt2Tokenizer::EncodeAppend(std::string_view text,
                                         std::vector<int>* ids) {
  pre_tokens_.clear();
  absl::Status status = AppendPreTokens(text, &pre_tokens_);
  if (!status.ok()) return status;
  ids->reserve(ids->size() + text.size() / 3);
  for (const PreToken& t : pre_tokens_) {
    EncodePreToken(text.substr(t.offset, t.length), ids);
  }
  return absl::OkStatus();
}

void Gpt2Tokenizer::EncodePreToken(std::string_view bytes,
                                   std::vector<int>* ids) {
  const Vocab& vocab = *vocab_;
  if (bytes.size() == 1) {
    ids->push_back(vocab.byte_to_id[static_cast<unsigned char>(bytes[0])]);
    return;
  }
  const bool cacheable = bytes.size() <= kMaxCachedBytes;
  if (cacheable) {
    const auto it = cache_.find(AbslView(bytes));
    if (it != cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int>& symbols = scratch_;
  symbols.clear();
  for (const char b : bytes) {
    symbols.push_back(vocab.byte_to_id[static_cast<unsigned char>(b)]);
  }
  if (bytes.size() >= heap_threshold_) {
    MergeWithHeap(&symbols);
  } else {
    MergeSimple(&symbols);
  }
  ids->insert(ids->end(), symbols.begin(), symbols.end());
  if (cacheable) {
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::string(bytes), symbols);
  }
}

// GPT-2's loop as published: find the adjacent pair with the lowest rank,
// replace all its occurrences (left to right, not overlapping) by the merged
// token, repeat until no adjacent pair has a rank. O(n^2) lookups; used for
// short pre-tokens, which are nearly all of them.
void Gpt2Tokenizer::MergeSimple(std::vector<int>* symbols) const {
  const Vocab& vocab = *vocab_;
  std::vector<int>& s = *symbols;
  // pairs[i]: the rank and merged token of the pair (s[i], s[i+1]).
  std::vector<Merge> pairs(s.size() > 0 ? s.size() - 1 : 0);
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    pairs[i] = vocab.Find(s[i], s[i + 1]);
  }
  while (s.size() > 1) {
    int best = kNoRank;
    for (const Merge& m : pairs) best = std::min(best, m.rank);
    if (best == kNoRank) break;
    // Ranks identify pairs uniquely, so pairs[i].rank == best means
    // (s[i], s[i+1]) is the pair being merged.
    size_t out = 0;
    size_t i = 0;
    while (i < s.size()) {
      if (i + 1 < s.size() && pairs[i].rank == best) {
        s[out++] = pairs[i].merged_id;
        i += 2;
      } else {
        s[out++] = s[i++];
      }
    }
    s.resize(out);
    pairs.resize(out > 0 ? out - 1 : 0);
    for (size_t j = 0; j + 1 < s.size(); ++j) {
      pairs[j] = vocab.Find(s[j], s[j + 1]);
    }
  }
}

// The same result in O(n log n) for long pre-tokens (long runs of letters,
// digits, punctuation or whitespace). Symbols form a linked list; a min-heap
// holds every adjacent pair that has a rank. Each step takes all heap entries
// of the lowest rank R at once and merges them in position order, skipping
// entries made stale by an earlier merge, which is exactly the published
// loop's left-to-right, non-overlapping pass. A merge creates pairs with the
// merged token, and these never have rank R (the merged token is longer than
// either half), so the batch is complete when it is taken.
void Gpt2Tokenizer::MergeWithHeap(std::vector<int>* symbols) const {
  const Vocab& vocab = *vocab_;
  std::vector<int>& s = *symbols;
  const int n = static_cast<int>(s.size());
  if (n < 2) return;
  std::vector<int> next(n), prev(n);
  for (int i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  std::vector<int> id = s;  // id[i]: the symbol at node i (if alive).
  std::vector<bool> alive(n, true);

  struct Entry {
    int rank;
    int left;   // Node of the pair's left symbol.
    int right;  // Node of the pair's right symbol.
    int left_id;
    int right_id;
    int merged_id;
  };
  const auto later = [](const Entry& a, const Entry& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(later)> heap(later);
  const auto push_pair = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const Merge m = vocab.Find(id[left], id[right]);
    if (m.rank == kNoRank) return;
    heap.push({m.rank, left, right, id[left], id[right], m.merged_id});
  };
  for (int i = 0; i + 1 < n; ++i) push_pair(i, i + 1);

  std::vector<Entry> batch;
  while (!heap.empty()) {
    const int rank = heap.top().rank;
    batch.clear();
    // The heap orders equal ranks by position, so the batch comes out sorted.
    while (!heap.empty() && heap.top().rank == rank) {
      batch.push_back(heap.top());
      heap.pop();
    }
    for (const Entry& e : batch) {
      const bool valid = alive[e.left] && alive[e.right] &&
                         next[e.left] == e.right && id[e.left] == e.left_id &&
                         id[e.right] == e.right_id;
      if (!valid) continue;
      id[e.left] = e.merged_id;
      alive[e.right] = false;
      next[e.left] = next[e.right];
      if (next[e.right] >= 0) prev[next[e.right]] = e.left;
      push_pair(prev[e.left], e.left);
      push_pair(e.left, next[e.left]);
    }
  }
  s.clear();
  for (int i = 0; i >= 0; i = next[i]) s.push_back(id[i]);
}

absl::StatusOr<std::string> Gpt2Tokenizer::Decode(
    const std::vector<int>& ids) const {
  return Decode(ids.data(), ids.size());
}

absl::StatusOr<std::string> Gpt2Tokenizer::Decode(const int* ids,
                                                  size_t n) const {
  const std::vector<std::string>& table = vocab_->id_to_bytes;
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || static_cast<size_t>(ids[i]) >= table.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", ids[i], " at position ", i,
                       " is outside [0, ", table.size(), ")"));
    }
    total += table[ids[i]].size();
  }
  std::string text;
  text.reserve(total);
  for (size_t i = 0; i < n; ++i) text += table[ids[i]];
  return text;
}

}  // namespace twist::common
