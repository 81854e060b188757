#include "common/training/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace twist::common {
namespace {

constexpr double kPi = 3.14159265358979323846;

}  // namespace

double LrSchedule::At(int64_t step) const {
  if (step < warmup_steps) {
    return peak * static_cast<double>(step + 1) / (warmup_steps + 1);
  }
  const double min_lr = peak * min_ratio;
  if (step >= total_steps) return min_lr;
  const double span = std::max<int64_t>(1, total_steps - warmup_steps);
  const double progress = static_cast<double>(step - warmup_steps) / span;
  return min_lr + 0.5 * (1.0 + std::cos(kPi * progress)) * (peak - min_lr);
}

}  // namespace twist::common
