// The coordinator's outer optimizer (DiLoCo): the merged update of a round is
// treated as a pseudo-gradient g = -mean_w(theta_w - theta) and applied with
// Nesterov momentum,
//   v <- mu v + g;   theta <- theta - lr (g + mu v)      (Nesterov)
//   v <- mu v + g;   theta <- theta - lr v               (heavy ball)
// only where the round had contributors: a unit nobody trained keeps its
// value and its velocity. lr = 1 with mu = 0 is plain IST merging, bit for bit.
#ifndef TWIST_COMMON_OUTER_OPTIMIZER_H_
#define TWIST_COMMON_OUTER_OPTIMIZER_H_

#include "absl/status/status.h"
#include "common/merge.h"
#include "common/named_tensors.h"

namespace twist::common {

struct OuterOptimizerOptions {
  double learning_rate = 1.0;
  double momentum = 0.0;
  bool nesterov = true;
};

class OuterOptimizer {
 public:
  explicit OuterOptimizer(OuterOptimizerOptions options) : options_(options) {}

  // Applies one round's merged update to `params` (in place).
  void Step(const MergedDelta& merged, const NamedTensors& params);

  // The velocity per parameter (empty until the first step with momentum),
  // for checkpoints; LoadState restores it.
  const NamedTensors& state() const { return velocity_; }
  absl::Status LoadState(const NamedTensors& state, const NamedTensors& params);

  const OuterOptimizerOptions& options() const { return options_; }

 private:
  OuterOptimizerOptions options_;
  NamedTensors velocity_;
};

}  // namespace twist::common

#endif  // TWIST_COMMON_OUTER_OPTIMIZER_H_
