#include "common/base/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace twist::common {

const std::string& HostName() {
  static const std::string name = [] {
    char buffer[256] = {};
    if (::gethostname(buffer, sizeof(buffer) - 1) != 0 || buffer[0] == '\0') {
      return std::string("unknown-host");
    }
    return std::string(buffer);
  }();
  return name;
}

absl::Status ErrnoStatus(int err, absl::string_view what,
                         absl::string_view action) {
  const std::string message =
      absl::StrCat(what, ": cannot ", action, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(
          absl::StrCat(message, ": free some space and retry"));
    case EIO:
      return absl::UnavailableError(
          absl::StrCat(message, ": the disk reported an I/O error"));
    default:
      return absl::InternalError(message);
  }
}

absl::Status WriteAll(int fd, const void* data, size_t size,
                      absl::string_view what) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, what, "write");
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  const std::string what = absl::StrCat(path, " on host ", HostName());
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, what, "open");
  std::string text;
  const absl::Status status =
      ReadToEnd(fd, what, size_t{1} << 16,
                [&](const char* data, size_t n) { text.append(data, n); });
  ::close(fd);
  if (!status.ok()) return status;
  return text;
}

absl::Status ReadToEnd(int fd, absl::string_view what, size_t buffer_size,
                       const std::function<void(const char*, size_t)>& sink) {
  std::vector<char> buffer(buffer_size);
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, what, "read");
    }
    if (n == 0) return absl::OkStatus();
    sink(buffer.data(), static_cast<size_t>(n));
  }
}

absl::StatusOr<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::Create(
    const std::string& path) {
  std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  const int fd =
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return ErrnoStatus(errno, absl::StrCat(tmp, " on host ", HostName()),
                       "create");
  }
  return std::unique_ptr<AtomicFileWriter>(
      new AtomicFileWriter(path, std::move(tmp), fd));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

absl::Status AtomicFileWriter::Write(const void* data, size_t size) {
  return WriteAll(fd_, data, size, absl::StrCat(tmp_, " on host ", HostName()));
}

absl::Status AtomicFileWriter::Commit() {
  const std::string what = absl::StrCat(tmp_, " on host ", HostName());
  if (::fsync(fd_) != 0) return ErrnoStatus(errno, what, "fsync");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) return ErrnoStatus(errno, what, "close");
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat(path_, " on host ", HostName()),
                       "rename into place");
  }
  committed_ = true;
  // The rename is durable only once the folder's entry is on disk.
  const size_t slash = path_.find_last_of('/');
  const std::string dir =
      slash == std::string::npos ? "." : path_.substr(0, slash + 1);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoStatus(errno, dir, "open the folder to fsync");
  const bool synced = ::fsync(dir_fd) == 0;
  const int sync_errno = errno;
  ::close(dir_fd);
  if (!synced) return ErrnoStatus(sync_errno, dir, "fsync the folder");
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(
    const std::string& path,
    const std::function<absl::Status(int fd, const std::string& tmp_path)>&
        write) {
  TWIST_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFileWriter> file,
                         AtomicFileWriter::Create(path));
  TWIST_RETURN_IF_ERROR(write(file->fd(), file->tmp_path()));
  return file->Commit();
}

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view content) {
  return WriteFileAtomically(path, [&](int fd, const std::string& tmp) {
    return WriteAll(fd, content.data(), content.size(),
                    absl::StrCat(tmp, " on host ", HostName()));
  });
}

}  // namespace twist::common
