// Merging returned subnetworks into the full model (DESIGN.md, round step 6).
//
// For each partitioned unit: theta <- theta + mean_w(theta_w - theta) over the
// workers that held it and returned a valid update; for each replicated
// tensor the same over the workers that returned a valid update. A unit or
// tensor without contributors keeps its value. With no training every delta is
// exactly zero, so extract-then-merge gives the full model back bit for bit.
#ifndef TWIST_COMMON_MERGE_H_
#define TWIST_COMMON_MERGE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/model_config.h"
#include "common/named_tensors.h"
#include "common/subnet.h"

namespace twist::common {

// The merged update of one round, in the full model's shapes.
struct MergedDelta {
  // mean_w(theta_w - theta) per element; zero where nobody contributed.
  NamedTensors mean_delta;
  // Contributors per tensor, shaped to broadcast against it: one count per
  // row (shape (rows, 1)) or column (shape (1, columns)) of a partitioned
  // tensor, per entry of a partitioned bias, a scalar for a replicated tensor.
  // Same dtype as the parameter.
  NamedTensors contributors;
  int num_updates = 0;
};

class SubnetMerger {
 public:
  // `full_params` is theta, the weights the round's subnetworks were cut
  // from; it must stay alive and unchanged until Finish().
  SubnetMerger(const ModelConfig& full, const NamedTensors& full_params);

  // Adds one worker's trained subnetwork (its weights after local training).
  // The update is accepted whole or rejected whole: InvalidArgument, naming
  // the tensor, for invalid units, a missing, extra or misshapen tensor, a
  // dtype other than the model's, or a NaN or infinite value.
  absl::Status AddWeights(const SubnetUnits& units,
                          const NamedTensors& subnet_params);

  // The same with the worker's deltas (trained minus received weights), which
  // is what reduced-precision transport sends.
  absl::Status AddDeltas(const SubnetUnits& units,
                         const NamedTensors& subnet_deltas);

  int num_accepted() const { return num_accepted_; }

  // The mean deltas of everything added so far.
  MergedDelta Finish() const;

 private:
  absl::Status Add(const SubnetUnits& units, const NamedTensors& tensors,
                   bool are_deltas);

  const ModelConfig full_;
  const NamedTensors& full_params_;
  NamedTensors sums_;    // sum of deltas, full shapes
  NamedTensors counts_;  // contributors, as in MergedDelta::contributors
  std::map<std::string, int64_t> slice_dims_;  // partitioned tensors only
  int num_accepted_ = 0;
};

// theta <- theta + mean_delta (plain IST merging).
void ApplyMergedDelta(const MergedDelta& merged,
                      const NamedTensors& full_params);

// OK when `tensors` is a well-formed update for `units` of the model whose
// parameters are `full_params`: every tensor present with the subnetwork's
// shape and the model's dtype, and finite. InvalidArgument naming the tensor.
absl::Status ValidateUpdate(const ModelConfig& full,
                            const NamedTensors& full_params,
                            const SubnetUnits& units,
                            const NamedTensors& tensors);

struct UpdateToMerge {
  const SubnetUnits* units;
  const NamedTensors* tensors;
  bool is_delta = false;  // trained-minus-received deltas, not weights
};

// Plain merging done in place, the fast way: validates each update (one
// status per update, in order; a rejected update is left out whole), then
// writes theta + mean_w(theta_w - theta) into `full_params` directly, with
// the same floating-point operations in the same order as SubnetMerger plus
// ApplyMergedDelta, so the results are identical bit for bit (except that a
// position nobody touched is not rewritten at all). One pass over the
// updates' bytes where each unit has one holder; a sum buffer only for
// tensors with shared positions.
std::vector<absl::Status> MergeInPlace(
    const ModelConfig& full, const NamedTensors& full_params,
    const std::vector<UpdateToMerge>& updates);

}  // namespace twist::common

#endif  // TWIST_COMMON_MERGE_H_
