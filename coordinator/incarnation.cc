#include "coordinator/incarnation.h"

#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/base/files.h"

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
  if (absl::Status s =
          common::WriteFileAtomically(path, absl::StrCat(next, "\n"));
      !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot record the incarnation in ", path, ": ",
                     s.message(), ": the state directory must be writable"));
  }
  return next;
}

}  // namespace twist::coordinator
