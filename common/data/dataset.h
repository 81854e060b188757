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
#ifndef TWIST_COMMON_DATA_DATASET_H_
#define TWIST_COMMON_DATA_DATASET_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data/dataset_meta.h"
#include "common/data/token_file.h"

namespace twist::common {

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

}  // namespace twist::common

#endif  // TWIST_COMMON_DATA_DATASET_H_
