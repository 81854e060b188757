// AdamW state (common/training/adamw.h) across subnetworks: which dimension
// of each parameter its steps are counted along (a unit's rows or columns),
// carrying a worker's state over from the units it held to the units it holds
// next (worker-resident state), and the coordinator's side of the state it
// keeps for the whole model (coordinator-kept state): slicing it for a worker
// and advancing the step counts of what was trained.
#ifndef TWIST_COMMON_IST_OPTIMIZER_STATE_H_
#define TWIST_COMMON_IST_OPTIMIZER_STATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ist/subnet.h"
#include "common/ist/tensor_pool.h"
#include "common/model/model_config.h"
#include "common/model/named_tensors.h"

namespace twist::common {

// Per parameter of the subnetwork `units` (in ParameterShapes order): the
// dimension its units run along, or -1 for a replicated parameter.
std::vector<int64_t> StepDims(const ModelConfig& full,
                              const SubnetUnits& units);

// The state of the subnetwork `to`, from `state` of the subnetwork `from` (of
// the same full model): positions of units held in both keep their moments
// and steps; units new to `to` start at zero moments and step 0; replicated
// parameters keep theirs. InvalidArgument for a state that does not fit
// `from`. Consumes `state`: tensors that carry over whole (replicated
// parameters, and sliced ones whose units stay in place) are moved, not
// copied, and each gathered tensor is released once carried, so that the
// old and the new state are never both whole in memory.
absl::StatusOr<NamedTensors> CarryState(const ModelConfig& full,
                                        const SubnetUnits& from,
                                        const SubnetUnits& to,
                                        NamedTensors state);

// One delivered update's optimizer state (the moments of the units it held,
// named as AdamW names them) for FullOptimizerState::Merge.
struct OptimizerStateUpdate {
  const SubnetUnits* units = nullptr;
  const NamedTensors* state = nullptr;
  // Trained-minus-received changes (reduced-precision transport), not values.
  bool is_delta = false;
};

// The whole model's AdamW state as the coordinator keeps it.
struct FullOptimizerState {
  NamedTensors exp_avg;     // by parameter name, the parameter's shape
  NamedTensors exp_avg_sq;  // by parameter name, the parameter's shape
  NamedTensors steps;       // by parameter name, float32 per position (or 1)

  // Zero moments and steps for the parameters `params`.
  static FullOptimizerState ZerosLike(const ModelConfig& full,
                                      const NamedTensors& params);
  // As named tensors ("exp_avg.<name>", ...) for checkpoints, and back.
  NamedTensors Named() const;
  static absl::StatusOr<FullOptimizerState> FromNamed(
      const ModelConfig& full, const NamedTensors& params,
      const NamedTensors& named);

  // The state of each subnetwork of `slots`, named as AdamW names it: the
  // moments in `wire` (from `pool` when given), the step counts in float32.
  absl::StatusOr<std::vector<NamedTensors>> Slice(
      const ModelConfig& full, const std::vector<SubnetUnits>& slots,
      at::ScalarType wire, TensorPool* pool = nullptr) const;

  // Merges the moments of `updates` (in the order given) into this state,
  // averaged over the updates that held each unit (never through an outer
  // optimizer), and advances by `local_steps` the step count of every
  // position one of them held. Errors: those of MergeUpdates (nothing
  // merged).
  absl::Status Merge(const ModelConfig& full,
                     const std::vector<OptimizerStateUpdate>& updates,
                     int local_steps, TensorPool* scratch = nullptr);
};

// The step counts of subnetwork `units`, named "steps.<name>".
NamedTensors SliceSteps(const ModelConfig& full, const SubnetUnits& units,
                        const NamedTensors& steps);

// Adds `local_steps` to the step count of every position that at least one
// of `trained` (the units of the updates that were merged) held.
void AdvanceSteps(const ModelConfig& full,
                  const std::vector<const SubnetUnits*>& trained,
                  int local_steps, NamedTensors* steps);

}  // namespace twist::common

#endif  // TWIST_COMMON_IST_OPTIMIZER_STATE_H_
