#include "coordinator/state_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/base/files.h"

namespace twist::coordinator {

absl::StatusOr<std::unique_ptr<StateLock>> StateLock::Acquire(
    const std::string& state_dir) {
  const std::string path = state_dir + "/lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return common::ErrnoStatus(errno, absl::StrCat("lock file ", path),
                               "open");
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) {
      ::close(fd);
      return common::ErrnoStatus(err, absl::StrCat("lock file ", path),
                                 "lock");
    }
    // The holder wrote who it is after taking the lock.
    char buffer[256] = {};
    const ssize_t n = ::pread(fd, buffer, sizeof(buffer) - 1, 0);
    ::close(fd);
    const std::string holder(
        absl::StripAsciiWhitespace(n > 0 ? std::string(buffer, n) : ""));
    return absl::FailedPreconditionError(absl::StrCat(
        "state directory ", state_dir, " is in use by another coordinator (",
        holder.empty() ? "holder unknown" : holder,
        "): stop it first, or give this one another --state_dir"));
  }
  const std::string me =
      absl::StrCat("pid ", ::getpid(), " on host ", common::HostName(), "\n");
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
    const absl::Status status =
        common::ErrnoStatus(errno, absl::StrCat("lock file ", path), "write");
    ::close(fd);
    return status;
  }
  return std::unique_ptr<StateLock>(new StateLock(fd));
}

StateLock::~StateLock() { ::close(fd_); }

}  // namespace twist::coordinator
