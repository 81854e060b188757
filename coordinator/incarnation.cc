#include "coordinator/incarnation.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace twist::coordinator {

absl::StatusOr<uint64_t> NextIncarnation(const std::string& state_dir) {
  const std::string path = state_dir + "/incarnation";
  uint64_t previous = 0;
  {
    std::ifstream in(path);
    if (in) {
      std::string text((std::istreambuf_iterator<char>(in)),
                       std::istreambuf_iterator<char>());
      if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &previous)) {
        return absl::DataLossError(absl::StrCat(
            path,
            " does not hold a number: the state directory is damaged; "
            "write 0 into it to start counting again"));
      }
    }
  }
  const uint64_t next = previous + 1;
  const std::string tmp = path + ".tmp";
  const int fd =
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno),
                     ": the state directory must be writable"));
  }
  const std::string text = absl::StrCat(next, "\n");
  const bool ok = ::write(fd, text.data(), text.size()) ==
                      static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot record the incarnation in ", path, ": ", std::strerror(errno)));
  }
  return next;
}

}  // namespace twist::coordinator
