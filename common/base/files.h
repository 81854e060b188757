// File-system helpers every library shares: errno to Status, whole-file reads
// and writes that never leave half a file behind, and the host name that
// error messages carry (a message about a path is useless without the
// machine it was read on).
#ifndef TWIST_COMMON_BASE_FILES_H_
#define TWIST_COMMON_BASE_FILES_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace twist::common {

// This machine's host name ("unknown-host" when the system will not say).
const std::string& HostName();

// A Status for the errno `err` of a failed system call: "<what>: cannot
// <action>: <strerror>", with the most specific code a caller can act on
// (NotFound for ENOENT, PermissionDenied for EACCES/EPERM, ResourceExhausted
// for ENOSPC/EDQUOT, Unavailable for EIO, Internal otherwise).
absl::Status ErrnoStatus(int err, absl::string_view what,
                         absl::string_view action);

// Writes all of `data` to `fd`, retrying short writes and EINTR.
absl::Status WriteAll(int fd, const void* data, size_t size,
                      absl::string_view what);

// Reads a whole file into memory. NotFound (naming the path and host) when
// it is missing; other errors as ErrnoStatus.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Reads the open file `fd` to its end in pieces of up to `buffer_size` bytes,
// passing each to `sink`, retrying interrupted reads; does not close `fd`.
// Errors as ErrnoStatus, naming `what`.
absl::Status ReadToEnd(int fd, absl::string_view what, size_t buffer_size,
                       const std::function<void(const char*, size_t)>& sink);

// A file written in pieces that appears under its name only when complete:
// the pieces go to a temporary file beside `path`; Commit() fsyncs it,
// renames it over `path` and fsyncs the folder. Destroyed uncommitted (an
// error, an interruption), it removes the temporary file and leaves `path`
// untouched.
class AtomicFileWriter {
 public:
  // Creates the temporary file. Errors as ErrnoStatus, naming it and the
  // host.
  static absl::StatusOr<std::unique_ptr<AtomicFileWriter>> Create(
      const std::string& path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  absl::Status Write(const void* data, size_t size);
  absl::Status Commit();

  int fd() const { return fd_; }
  const std::string& tmp_path() const { return tmp_; }

 private:
  AtomicFileWriter(std::string path, std::string tmp, int fd)
      : path_(std::move(path)), tmp_(std::move(tmp)), fd_(fd) {}

  const std::string path_;
  const std::string tmp_;
  int fd_;
  bool committed_ = false;
};

// Calls `write` with a descriptor of a new temporary file beside `path`,
// then fsyncs the file, renames it over `path` and fsyncs the folder, so that
// after a crash `path` holds either the old or the new content in full, never
// a mix. On any error the temporary file is removed and `path` is untouched.
absl::Status WriteFileAtomically(
    const std::string& path,
    const std::function<absl::Status(int fd, const std::string& tmp_path)>&
        write);

// WriteFileAtomically with the whole content in memory.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view content);

}  // namespace twist::common

#endif  // TWIST_COMMON_BASE_FILES_H_
