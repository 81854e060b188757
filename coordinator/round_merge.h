// The end of a round: the delivered updates merged into the full model in
// slot order (not arrival order, so the result does not depend on network
// timing: floating-point sums are not associative), and a line per slot of
// what happened to it.
#ifndef TWIST_COORDINATOR_ROUND_MERGE_H_
#define TWIST_COORDINATOR_ROUND_MERGE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ist/merge.h"
#include "common/ist/tensor_pool.h"
#include "common/model/model_config.h"
#include "common/model/named_tensors.h"
#include "coordinator/round_collector.h"
#include "twist/v1/job.pb.h"

namespace twist::coordinator {

// What a round produced.
struct RoundOutcome {
  std::vector<twist::v1::RoundWorker> workers;  // one per slot, slot order
  std::vector<SlotEnd> ends;                    // how each slot ended
  int accepted = 0;
  double mean_train_loss = 0;  // over accepted updates; NaN when none
  int64_t tokens = 0;
  int64_t bytes_received = 0;
  // Seconds from the hand-out to each accepted update's arrival: what the
  // straggler deadline learns from.
  std::vector<double> accepted_seconds;
};

// Merges the delivered updates of `results` (Close()d from the collector of
// `slots`) into `params` through `step` (common/ist/merge.h), in slot order;
// a weight update of a shift-corrected slot has its bias shift taken off
// first. `velocity` and `scratch` as MergeUpdates. Errors: those of
// MergeUpdates (nothing merged).
absl::StatusOr<RoundOutcome> MergeRound(const common::ModelConfig& full,
                                        const common::NamedTensors& params,
                                        const std::vector<SlotSpec>& slots,
                                        std::vector<SlotResult>& results,
                                        const common::OuterStep& step,
                                        common::NamedTensors* velocity,
                                        common::TensorPool* scratch);

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_ROUND_MERGE_H_
