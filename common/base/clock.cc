#include "common/base/clock.h"

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace twist::common {

double NowSeconds() { return absl::ToUnixMicros(absl::Now()) * 1e-6; }

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace twist::common
