// Token files: raw little-endian uint16 token ids, no header (the nanoGPT
// convention, so nanoGPT's `np.memmap(path, dtype=np.uint16)` reads them and
// its prepared data sets load here), mapped read-only into memory.
#ifndef TWIST_COMMON_DATA_TOKEN_FILE_H_
#define TWIST_COMMON_DATA_TOKEN_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/base/files.h"

namespace twist::common {

// Writes `tokens` as a token file (little-endian uint16) at `path`, through a
// temporary file that is fsynced and renamed.
absl::Status WriteTokenFile(const std::string& path,
                            const std::vector<uint16_t>& tokens);

// Writes a token file in pieces, through a temporary file that is renamed
// into place by Finish() (common/base/files.h AtomicFileWriter), buffering
// what it is given; memory stays constant whatever the file's size.
class TokenFileWriter {
 public:
  static absl::StatusOr<std::unique_ptr<TokenFileWriter>> Create(
      const std::string& path);

  // Appends ids; InvalidArgument for an id outside [0, 65536).
  absl::Status Append(const int* ids, size_t n);
  absl::Status Append(uint16_t id);
  absl::Status Finish();
  int64_t tokens() const { return tokens_; }

 private:
  explicit TokenFileWriter(std::unique_ptr<AtomicFileWriter> file)
      : file_(std::move(file)) {}
  absl::Status Flush();

  std::unique_ptr<AtomicFileWriter> file_;
  std::string buffer_;  // little-endian bytes not written yet
  int64_t tokens_ = 0;
};

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

}  // namespace twist::common

#endif  // TWIST_COMMON_DATA_TOKEN_FILE_H_
