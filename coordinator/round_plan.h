// Which units each worker holds in a round: the job's quotas turned into one
// balls-in-hats draw per layer and kind (twist mode), or the whole model for
// everyone (local_sgd mode). Pure: a function of the spec, the round and the
// workers' capacities, so any process can recompute a round's plan.
#ifndef TWIST_COORDINATOR_ROUND_PLAN_H_
#define TWIST_COORDINATOR_ROUND_PLAN_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/model_config.h"
#include "common/ist/subnet.h"
#include "twist/v1/job.pb.h"

namespace twist::coordinator {

// One SubnetUnits per slot (worker) of round `round`, for workers with the
// given capacities (declared or learned; used unless spec.quota() is
// QUOTA_EQUAL), which share out the equal quotas' total. Quotas per
// layer: heads_per_worker / ffn_columns_per_worker when set, else keep_ratio
// when set, else half of each layer (common::DefaultQuota). Errors as
// AssignUnits.
absl::StatusOr<std::vector<common::SubnetUnits>> PlanRound(
    const twist::v1::JobSpec& spec, const common::ModelConfig& config,
    int32_t round, const std::vector<double>& capacities);

// Each slot's local steps this round: spec.local_steps() for every slot,
// unless an unequal quota shares out local steps (quota_in:
// QUOTA_IN_LOCAL_STEPS; PlanRound then gives every slot the equal quotas):
// local_steps * n * c_w / sum(c), rounded, at least 1, so a round holds
// about the work of n equal workers. InvalidArgument on a capacity that is
// not a positive number.
absl::StatusOr<std::vector<int32_t>> LocalStepsPerSlot(
    const twist::v1::JobSpec& spec, const std::vector<double>& capacities);

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_ROUND_PLAN_H_
