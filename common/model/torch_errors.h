// The boundary between LibTorch's exceptions and the project's Status. A
// LibTorch call throws c10::Error (CUDA out of memory, a shape mismatch, a
// failed allocation); the daemons catch it where a unit of work (a round, an
// evaluation) starts and turn it into a Status that says what failed:
//   ResourceExhausted  out of memory (the work can be retried, smaller)
//   Aborted            the device cannot be trusted any more (an illegal
//                      memory access, a device-side assert, an ECC error):
//                      the process should end
//   Internal           any other LibTorch or standard library exception
#ifndef TWIST_COMMON_MODEL_TORCH_ERRORS_H_
#define TWIST_COMMON_MODEL_TORCH_ERRORS_H_

#include <c10/util/Exception.h>

#include <exception>
#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace twist::common {

// The Status for an exception thrown while doing `what`.
absl::Status TorchErrorStatus(absl::string_view what, const std::exception& e);

// Runs `fn` (returning absl::Status or absl::StatusOr<T>) and returns its
// result, or the TorchErrorStatus of what it threw.
template <typename F>
auto CatchTorchErrors(absl::string_view what, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return TorchErrorStatus(what, e);
  }
}

}  // namespace twist::common

#endif  // TWIST_COMMON_MODEL_TORCH_ERRORS_H_
