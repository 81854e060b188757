#include "common/model/torch_errors.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace twist::common {
namespace {

// c10::Error's what() carries a C++ backtrace after its first lines; the
// message a person needs is the part before it.
std::string Headline(const std::exception& e) {
  if (const auto* torch = dynamic_cast<const c10::Error*>(&e)) {
    return torch->what_without_backtrace();
  }
  return e.what();
}

}  // namespace

absl::Status TorchErrorStatus(absl::string_view what, const std::exception& e) {
  std::string message = Headline(e);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
    message.pop_back();
  }
  const std::string text = absl::StrCat(what, ": ", message);
  if (absl::StrContains(message, "out of memory") ||
      absl::StrContains(message, "not enough memory") ||
      absl::StrContains(message, "can't allocate memory") ||
      dynamic_cast<const std::bad_alloc*>(&e) != nullptr) {
    return absl::ResourceExhaustedError(text);
  }
  if (absl::StrContains(message, "illegal memory access") ||
      absl::StrContains(message, "device-side assert") ||
      absl::StrContains(message, "uncorrectable ECC") ||
      absl::StrContains(message, "misaligned address")) {
    return absl::AbortedError(
        absl::StrCat(text, " (the device cannot be trusted any more)"));
  }
  return absl::InternalError(text);
}

}  // namespace twist::common
