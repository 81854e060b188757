// meta.json of a prepared dataset: its vocabulary, token counts, content
// hash and tokenizer (layout of a dataset folder: common/data/dataset.h).
#ifndef TWIST_COMMON_DATA_DATASET_META_H_
#define TWIST_COMMON_DATA_DATASET_META_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace twist::common {

inline constexpr char kMetaFile[] = "meta.json";
inline constexpr char kTrainFile[] = "train.bin";
inline constexpr char kValFile[] = "val.bin";
// Appended to "missing" errors: how a user gets the file.
inline constexpr char kPrepareHint[] = "run `twistctl prepare` to create it";

// "dataset <dir> on host <host>": how errors name a dataset folder.
std::string DatasetLabel(const std::string& dir);

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

}  // namespace twist::common

#endif  // TWIST_COMMON_DATA_DATASET_META_H_
