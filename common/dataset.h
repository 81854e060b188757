// A prepared dataset on disk, as `twistctl prepare` writes it and workers and
// the coordinator read it:
//
//   <dir>/train.bin   training tokens
//   <dir>/val.bin     validation tokens
//   <dir>/meta.json   {"vocab_size", "train_tokens", "val_tokens",
//                      "content_hash", "tokenizer", "source"}
//
// Token files follow the nanoGPT convention: raw little-endian uint16 token
// ids, no header, so nanoGPT's `np.memmap(path, dtype=np.uint16)` reads them
// and its prepared data sets load here. A job names its dataset's content
// hash; every machine reads its own copy, so every error names the host as
// well as the path.
//
// Batches are drawn with the project's own generator (common/rng.h), never
// <random>'s distributions, so a (job seed, round, slot, step) selects the
// same token windows on every platform and standard library.
//
// Shapes: B batch, T context (time). Batches are (B, T) row-major.
#ifndef TWIST_COMMON_DATASET_H_
#define TWIST_COMMON_DATASET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace twist::common {

// Contents of meta.json. Example: {vocab_size: 256, train_tokens: 5400000,
// val_tokens: 600000, content_hash: "3f2a...", tokenizer: "bytes",
// source: "/data/brown"}.
struct DatasetMeta {
  int vocab_size = 0;        // token ids are < vocab_size; at most 65536
  int64_t train_tokens = 0;  // tokens in train.bin
  int64_t val_tokens = 0;    // tokens in val.bin
  std::string content_hash;  // ComputeContentHash of the two token files
  std::string tokenizer;     // "bytes": one token per byte, vocab 256
  std::string source;        // the input `twistctl prepare` read
};

// Reads `dir`/meta.json. NotFound when it is missing; DataLoss when it is not
// JSON or a field is missing or out of range (vocab_size, train_tokens,
// val_tokens and content_hash are required; tokenizer and source default to
// ""). Unknown fields are ignored.
absl::StatusOr<DatasetMeta> ReadDatasetMeta(const std::string& dir);

// Writes `dir`/meta.json (the folder must exist) through a temporary file that
// is fsynced and renamed, so readers never see half a file.
absl::Status WriteDatasetMeta(const std::string& dir, const DatasetMeta& meta);

// Writes `tokens` as a token file (little-endian uint16) at `path`, through a
// temporary file that is fsynced and renamed.
absl::Status WriteTokenFile(const std::string& path,
                            const std::vector<uint16_t>& tokens);

// A token file mapped read-only into memory. Pages load on demand, so opening
// a multi-gigabyte file costs nothing and random batches touch only what they
// read. Immutable after Open, hence safe to read from several threads.
class TokenFile {
 public:
  // NotFound (saying to run `twistctl prepare`) when `path` does not exist;
  // DataLoss when its length is odd (a truncated file or not a token file);
  // PermissionDenied / Internal for other failures. Every message names the
  // path and the host.
  static absl::StatusOr<std::unique_ptr<TokenFile>> Open(
      const std::string& path);

  ~TokenFile();
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;

  const std::string& path() const { return path_; }

  // Number of tokens (half the file's length in bytes).
  int64_t size() const { return size_; }

  // Token `i`, 0 <= i < size(), decoded from little-endian whatever the host's
  // byte order.
  uint16_t at(int64_t i) const {
    const unsigned char* p = bytes_ + 2 * i;
    return static_cast<uint16_t>(p[0] | (p[1] << 8));
  }

  // The mapped tokens in the file's byte order (little-endian), valid while
  // this object lives; nullptr for an empty file. Equal to at() on every
  // little-endian host (x86-64, AArch64); use at() where that matters.
  const uint16_t* data() const {
    return reinterpret_cast<const uint16_t*>(bytes_);
  }

 private:
  friend class Dataset;

  TokenFile(std::string path, void* mapping, int64_t size);

  // Open, with errors naming the file as `label` (e.g. "dataset /d on host h:
  // train.bin") instead of by its path alone.
  static absl::StatusOr<std::unique_ptr<TokenFile>> OpenLabelled(
      const std::string& path, const std::string& label);

  std::string path_;
  void* mapping_;               // from mmap; nullptr for an empty file
  const unsigned char* bytes_;  // == mapping_
  int64_t size_;                // tokens
};

// meta.json plus both token files of a prepared dataset folder.
class Dataset {
 public:
  // Opens `dir`. Checks that meta.json's token counts match the files (a
  // mismatch is DataLoss: the files come from different preparations). Does
  // not scan token ids against vocab_size (that would read every page) nor
  // recompute the content hash (ComputeContentHash does). Errors start
  // "dataset <dir> on host <host>: " and say how to fix the problem.
  static absl::StatusOr<Dataset> Open(const std::string& dir);

  Dataset(Dataset&&) = default;
  Dataset& operator=(Dataset&&) = default;

  const std::string& dir() const { return dir_; }
  const DatasetMeta& meta() const { return meta_; }
  const TokenFile& train() const { return *train_; }
  const TokenFile& val() const { return *val_; }

 private:
  Dataset(std::string dir, DatasetMeta meta, std::unique_ptr<TokenFile> train,
          std::unique_ptr<TokenFile> val);

  std::string dir_;
  DatasetMeta meta_;
  std::unique_ptr<TokenFile> train_;
  std::unique_ptr<TokenFile> val_;
};

// Lower-case hex SHA-256 over "train.bin <bytes>\n", the bytes of
// `dir`/train.bin, "val.bin <bytes>\n" and the bytes of `dir`/val.bin (the
// lengths make the train/validation boundary part of the hash). Streams the
// files, so memory stays constant. NotFound (saying to run `twistctl prepare`)
// when either file is missing.
absl::StatusOr<std::string> ComputeContentHash(const std::string& dir);

// The seed of the batch a worker draws at local step `step` of `round` in
// `slot` of a job. Carries a fixed tag so it never coincides with a partition
// seed built from the same numbers.
uint64_t BatchSeed(uint64_t job_seed, int64_t round, int64_t slot,
                   int64_t step);

// A random training batch, nanoGPT style: `batch` windows whose start
// positions are uniform in [0, size - context - 1] (drawn in order with
// SplitMix64(seed).UniformBelow(size - context)); inputs are the `context`
// tokens from each start and targets the same window shifted by one token.
// Fills `inputs` and `targets` with batch * context ids each, (B, T)
// row-major (previous contents are replaced). InvalidArgument for a
// non-positive batch or context; FailedPrecondition when the file holds fewer
// than context + 1 tokens.
absl::Status SampleBatch(const TokenFile& tokens, int batch, int context,
                         uint64_t seed, std::vector<int64_t>* inputs,
                         std::vector<int64_t>* targets);

// Number of non-overlapping evaluation windows of `context` tokens (plus one
// target token) that `tokens` holds: slots start at 0, context, 2*context, ...
// up to the last start that leaves room for the targets. 0 when the file holds
// fewer than context + 1 tokens.
int64_t EvalWindowCount(const TokenFile& tokens, int context);

// Evaluation batch `index` (0, 1, 2, ...): fixed windows, so every evaluation
// of a job reads the same data. Window j of batch `index` is global window
// w = index * batch + j, which reads slot (w * g) mod M of the M =
// EvalWindowCount slots, where g is the integer nearest M / golden ratio that
// is coprime to M. Hence:
//   - the first M windows read every slot exactly once (full coverage) and
//     later windows repeat that order;
//   - any prefix of the order is spread evenly over the whole file (a golden
//     ratio sequence), so an evaluation of a few batches samples the start,
//     middle and end of the validation text alike rather than its first
//     pages only.
// Fills (B, T) inputs and targets as SampleBatch does. InvalidArgument for a
// non-positive batch or context or a negative index; FailedPrecondition when
// the file holds fewer than context + 1 tokens.
absl::Status EvalBatch(const TokenFile& tokens, int batch, int context,
                       int index, std::vector<int64_t>* inputs,
                       std::vector<int64_t>* targets);

}  // namespace twist::common

#endif  // TWIST_COMMON_DATASET_H_
