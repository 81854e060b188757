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
#include "common/ist/optimizer_state.h"
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

// Where a round's updates go: the model, and (coordinator-kept optimizer
// state) the moments.
struct MergeTargets {
  const common::NamedTensors* params = nullptr;
  common::OuterStep step;                  // the outer optimizer's
  common::NamedTensors* velocity = nullptr;  // its momentum
  // Null unless the coordinator keeps the optimizer state: then each update
  // carries its units' moments after its parameters, and they are averaged
  // over the workers that held each unit (never through the outer
  // optimizer), and the step counts of what was trained advance.
  common::FullOptimizerState* optimizer_state = nullptr;
  int local_steps = 0;
  common::TensorPool* scratch = nullptr;  // the merge's sums
};

// Merges the delivered updates of `results` (Close()d from the collector of
// `slots`) into `targets`, in slot order; a weight update of a
// shift-corrected slot has its bias shift taken off first. Errors: those of
// MergeUpdates (nothing merged).
absl::StatusOr<RoundOutcome> MergeRound(const common::ModelConfig& full,
                                        const std::vector<SlotSpec>& slots,
                                        std::vector<SlotResult>& results,
                                        const MergeTargets& targets);

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_ROUND_MERGE_H_
