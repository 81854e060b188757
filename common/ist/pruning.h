// Subnetworks of a trained model as models of their own ("golden tickets"):
// drawing a random subnetwork at a keep ratio, and cutting it out with its
// partial sums scaled or its biases shift-corrected.
#ifndef TWIST_COMMON_IST_PRUNING_H_
#define TWIST_COMMON_IST_PRUNING_H_

#include <torch/torch.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "common/ist/shift_correction.h"
#include "common/ist/subnet.h"
#include "common/model/gpt.h"
#include "common/model/model_config.h"
#include "common/model/named_tensors.h"

namespace twist::common {

// A random subnetwork keeping round(keep_ratio * k) of every layer's k heads
// and k FFN columns (at least one each), drawn with the project's generator:
// the same for the same seed everywhere. keep_ratio in (0, 1].
absl::StatusOr<SubnetUnits> RandomSubnet(const ModelConfig& full,
                                         double keep_ratio, uint64_t seed);

// The subnetwork `units` of a model with parameters `full_params`, as a
// model: its partial sums scaled per `scaling`, or, when `correction` is
// given, scales of 1 and the missing units' mean contributions in its biases.
absl::StatusOr<Gpt> PruneModel(const ModelConfig& full,
                               const NamedTensors& full_params,
                               const SubnetUnits& units,
                               PartialSumScaling scaling,
                               const UnitContributions* correction = nullptr);

}  // namespace twist::common

#endif  // TWIST_COMMON_IST_PRUNING_H_
