#include "common/ist/pruning.h"

#include "common/base/status_macros.h"
#include "common/ist/partition.h"

namespace twist::common {

absl::StatusOr<SubnetUnits> RandomSubnet(const ModelConfig& full,
                                         double keep_ratio, uint64_t seed) {
  SubnetUnits units;
  units.layers.resize(full.n_layer);
  for (int l = 0; l < full.n_layer; ++l) {
    for (UnitKind kind : {UnitKind::kHead, UnitKind::kFfnColumn}) {
      const int k =
          kind == UnitKind::kHead ? full.n_head[l] : full.ffn_width[l];
      TWIST_ASSIGN_OR_RETURN(std::vector<int> quota,
                             QuotasFromKeepRatio(k, 1, keep_ratio));
      // Round -1: never a training round's draw.
      TWIST_ASSIGN_OR_RETURN(
          UnitAssignment hats,
          AssignUnits(k, quota, PartitionKey{seed, -1, l, kind}, false));
      (kind == UnitKind::kHead ? units.layers[l].heads
                               : units.layers[l].ffn_columns) =
          std::move(hats[0]);
    }
  }
  return units;
}

absl::StatusOr<Gpt> PruneModel(const ModelConfig& full,
                               const NamedTensors& full_params,
                               const SubnetUnits& units,
                               PartialSumScaling scaling,
                               const UnitContributions* correction) {
  NamedTensors params;
  for (const auto& [name, t] : full_params) {
    if (name != "lm_head.weight") params.Set(name, t);
  }
  TWIST_ASSIGN_OR_RETURN(std::vector<NamedTensors> sliced,
                         ExtractSubnets(full, params, {units},
                                        params.begin()->tensor.scalar_type()));
  if (correction != nullptr) {
    ApplyBiasShifts(BiasShifts(*correction, units), sliced[0]);
    scaling = PartialSumScaling::kNone;
  }
  return BuildSubnetModel(full, units, sliced[0], scaling);
}

}  // namespace twist::common
