#include "common/data/token_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/base/files.h"
#include "common/data/dataset_meta.h"

namespace twist::common {

absl::Status WriteTokenFile(const std::string& path,
                            const std::vector<uint16_t>& tokens) {
  // Encode explicitly so the file is little-endian on any host.
  std::string bytes(tokens.size() * 2, '\0');
  for (size_t i = 0; i < tokens.size(); ++i) {
    bytes[2 * i] = static_cast<char>(tokens[i] & 0xff);
    bytes[2 * i + 1] = static_cast<char>(tokens[i] >> 8);
  }
  return WriteFileAtomically(path, bytes);
}

absl::StatusOr<std::unique_ptr<TokenFileWriter>> TokenFileWriter::Create(
    const std::string& path) {
  absl::StatusOr<std::unique_ptr<AtomicFileWriter>> file =
      AtomicFileWriter::Create(path);
  if (!file.ok()) return file.status();
  return std::unique_ptr<TokenFileWriter>(
      new TokenFileWriter(*std::move(file)));
}

absl::Status TokenFileWriter::Append(uint16_t id) {
  // Little-endian on any host.
  buffer_.push_back(static_cast<char>(id & 0xff));
  buffer_.push_back(static_cast<char>(id >> 8));
  ++tokens_;
  return buffer_.size() >= (size_t{1} << 20) ? Flush() : absl::OkStatus();
}

absl::Status TokenFileWriter::Append(const int* ids, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token id ", ids[i], " does not fit a uint16 token file"));
    }
    absl::Status s = Append(static_cast<uint16_t>(ids[i]));
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status TokenFileWriter::Flush() {
  absl::Status s = file_->Write(buffer_.data(), buffer_.size());
  buffer_.clear();
  return s;
}

absl::Status TokenFileWriter::Finish() {
  absl::Status s = Flush();
  if (!s.ok()) return s;
  return file_->Commit();
}

TokenFile::TokenFile(std::string path, void* mapping, int64_t size)
    : path_(std::move(path)),
      mapping_(mapping),
      bytes_(static_cast<const unsigned char*>(mapping)),
      size_(size) {}

TokenFile::~TokenFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, static_cast<size_t>(size_) * 2);
}

absl::StatusOr<std::unique_ptr<TokenFile>> TokenFile::Open(
    const std::string& path) {
  return OpenLabelled(
      path, absl::StrCat("token file ", path, " on host ", HostName()));
}

absl::StatusOr<std::unique_ptr<TokenFile>> TokenFile::OpenLabelled(
    const std::string& path, const std::string& label) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat(label, " missing (", path, "): ", kPrepareHint));
    }
    return ErrnoStatus(errno, absl::StrCat(label, " (", path, ")"), "open");
  }
  struct stat info;
  if (::fstat(fd, &info) != 0) {
    absl::Status status =
        ErrnoStatus(errno, absl::StrCat(label, " (", path, ")"), "stat");
    ::close(fd);
    return status;
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat(label, " (", path,
                     ") is not a regular file: point the job at a "
                     "folder written by `twistctl prepare`"));
  }
  const int64_t bytes = static_cast<int64_t>(info.st_size);
  if (bytes % 2 != 0) {
    ::close(fd);
    return absl::DataLossError(absl::StrCat(
        label, " (", path, ") has an odd length of ", bytes,
        " bytes, but token files hold 2-byte ids: the file is truncated or "
        "not a token file; rerun `twistctl prepare`"));
  }
  void* mapping = nullptr;
  // mmap rejects a zero length; an empty file simply has no tokens.
  if (bytes > 0) {
    mapping = ::mmap(nullptr, static_cast<size_t>(bytes), PROT_READ,
                     MAP_PRIVATE, fd, 0);
    if (mapping == MAP_FAILED) {
      absl::Status status =
          ErrnoStatus(errno, absl::StrCat(label, " (", path, ")"), "mmap");
      ::close(fd);
      return status;
    }
  }
  // The mapping keeps the file alive; the descriptor is no longer needed.
  ::close(fd);
  return std::unique_ptr<TokenFile>(new TokenFile(path, mapping, bytes / 2));
}

}  // namespace twist::common
