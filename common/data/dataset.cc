#include "common/data/dataset.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/files.h"
#include "common/base/sha256.h"
#include "common/base/status_macros.h"

namespace twist::common {

Dataset::Dataset(std::string dir, DatasetMeta meta,
                 std::unique_ptr<TokenFile> train,
                 std::unique_ptr<TokenFile> val)
    : dir_(std::move(dir)),
      meta_(std::move(meta)),
      train_(std::move(train)),
      val_(std::move(val)) {}

absl::StatusOr<Dataset> Dataset::Open(const std::string& dir) {
  const std::string label = DatasetLabel(dir);
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) {
    return absl::NotFoundError(
        absl::StrCat(label,
                     ": no such folder: copy the dataset to this host or run "
                     "`twistctl prepare` there"));
  }
  TWIST_ASSIGN_OR_RETURN(DatasetMeta meta, ReadDatasetMeta(dir));
  TWIST_ASSIGN_OR_RETURN(std::unique_ptr<TokenFile> train,
                         TokenFile::OpenLabelled(
                             (std::filesystem::path(dir) / kTrainFile).string(),
                             absl::StrCat(label, ": ", kTrainFile)));
  TWIST_ASSIGN_OR_RETURN(
      std::unique_ptr<TokenFile> val,
      TokenFile::OpenLabelled((std::filesystem::path(dir) / kValFile).string(),
                              absl::StrCat(label, ": ", kValFile)));
  auto check_count = [&](const char* file, const char* field, int64_t expected,
                         int64_t actual) -> absl::Status {
    if (expected == actual) return absl::OkStatus();
    return absl::DataLossError(absl::StrCat(
        label, ": meta.json says ", field, " = ", expected, " but ", file,
        " holds ", actual,
        " tokens: the files come from different "
        "preparations or were truncated in a copy; copy the folder again or "
        "rerun `twistctl prepare`"));
  };
  TWIST_RETURN_IF_ERROR(check_count(kTrainFile, "train_tokens",
                                    meta.train_tokens, train->size()));
  TWIST_RETURN_IF_ERROR(
      check_count(kValFile, "val_tokens", meta.val_tokens, val->size()));
  return Dataset(dir, std::move(meta), std::move(train), std::move(val));
}

absl::StatusOr<std::string> ComputeContentHash(const std::string& dir) {
  const std::string label = DatasetLabel(dir);
  Sha256 hash;
  for (const char* name : {kTrainFile, kValFile}) {
    const std::string path = (std::filesystem::path(dir) / name).string();
    const std::string what = absl::StrCat(label, ": ", name, " (", path, ")");
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) {
        return absl::NotFoundError(absl::StrCat(label, ": ", name, " missing (",
                                                path, "): ", kPrepareHint));
      }
      return ErrnoStatus(errno, what, "open");
    }
    // Each file's name and length go in before its bytes, so moving the
    // train/val boundary (another --val_fraction) changes the hash.
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      const absl::Status status = ErrnoStatus(errno, what, "stat");
      ::close(fd);
      return status;
    }
    hash.Update(absl::StrCat(name, " ", st.st_size, "\n"));
    const absl::Status read =
        ReadToEnd(fd, what, size_t{1} << 20,
                  [&](const char* data, size_t n) { hash.Update(data, n); });
    ::close(fd);
    if (!read.ok()) return read;
  }
  return hash.HexDigest();
}

}  // namespace twist::common
