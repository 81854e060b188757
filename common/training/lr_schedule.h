// The learning-rate schedule of a job: one warm-up + cosine curve over all
// of its R * L global steps, in every mode, so modes compare step for step.
#ifndef TWIST_COMMON_TRAINING_LR_SCHEDULE_H_
#define TWIST_COMMON_TRAINING_LR_SCHEDULE_H_

#include <cstdint>

namespace twist::common {

// Linear warm-up to `peak` over `warmup_steps`, then cosine decay to
// peak * min_ratio at `total_steps` (nanoGPT's schedule). One schedule spans
// the whole job (R * L global steps) in every mode, so modes compare step for
// step.
struct LrSchedule {
  double peak = 1e-3;
  double min_ratio = 0.1;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  // Learning rate at global step `step` (0-based).
  double At(int64_t step) const;
};

}  // namespace twist::common

#endif  // TWIST_COMMON_TRAINING_LR_SCHEDULE_H_
