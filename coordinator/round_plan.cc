#include "coordinator/round_plan.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

#include "common/ist/partition.h"
#include "common/base/status_macros.h"

namespace twist::coordinator {
namespace {

using common::UnitKind;

// Quotas for one layer and kind of a round with `capacities.size()` workers.
absl::StatusOr<std::vector<int>> Quotas(const twist::v1::JobSpec& spec,
                                        int num_units, UnitKind kind,
                                        const std::vector<double>& capacities) {
  const int n = static_cast<int>(capacities.size());
  const int count = kind == UnitKind::kHead ? spec.heads_per_worker()
                                            : spec.ffn_columns_per_worker();
  std::vector<int> equal;
  if (count > 0) {
    equal.assign(n, std::min(count, num_units));
  } else if (spec.keep_ratio() > 0) {
    TWIST_ASSIGN_OR_RETURN(
        equal, common::QuotasFromKeepRatio(num_units, n, spec.keep_ratio()));
  } else {
    equal.assign(n, common::DefaultQuota(num_units, n));
  }
  if (spec.quota() == twist::v1::QUOTA_EQUAL || n <= 1 ||
      spec.quota_in() == twist::v1::QUOTA_IN_LOCAL_STEPS) {
    return equal;
  }
  int total = 0;
  for (int q : equal) total += q;
  return common::QuotasFromCapacities(num_units, capacities, total);
}

}  // namespace

absl::StatusOr<std::vector<common::SubnetUnits>> PlanRound(
    const twist::v1::JobSpec& spec, const common::ModelConfig& config,
    int32_t round, const std::vector<double>& capacities) {
  const int n = static_cast<int>(capacities.size());
  if (n == 0) {
    return absl::FailedPreconditionError("no live workers to plan a round for");
  }
  if (spec.mode() == twist::v1::MODE_LOCAL_SGD) {
    return std::vector<common::SubnetUnits>(n, common::AllUnits(config));
  }
  std::vector<common::SubnetUnits> plan(n);
  for (auto& units : plan) units.layers.resize(config.n_layer);
  for (int l = 0; l < config.n_layer; ++l) {
    for (UnitKind kind : {UnitKind::kHead, UnitKind::kFfnColumn}) {
      const int k =
          kind == UnitKind::kHead ? config.n_head[l] : config.ffn_width[l];
      TWIST_ASSIGN_OR_RETURN(std::vector<int> quotas,
                             Quotas(spec, k, kind, capacities));
      TWIST_ASSIGN_OR_RETURN(
          common::UnitAssignment hats,
          spec.deal() == twist::v1::DEAL_ROLLING
              ? common::RollingWindows(k, quotas, round)
              : common::AssignUnits(
                    k, quotas,
                    common::PartitionKey{spec.seed(), round, l, kind},
                    /*require_cover=*/false));
      for (int w = 0; w < n; ++w) {
        auto& layer = plan[w].layers[l];
        (kind == UnitKind::kHead ? layer.heads : layer.ffn_columns) =
            std::move(hats[w]);
      }
    }
  }
  return plan;
}

absl::StatusOr<std::vector<int32_t>> LocalStepsPerSlot(
    const twist::v1::JobSpec& spec, const std::vector<double>& capacities) {
  const int n = static_cast<int>(capacities.size());
  std::vector<int32_t> steps(n, spec.local_steps());
  if (spec.quota() == twist::v1::QUOTA_EQUAL ||
      spec.quota_in() != twist::v1::QUOTA_IN_LOCAL_STEPS || n <= 1) {
    return steps;
  }
  double sum = 0;
  for (double c : capacities) {
    if (!(c > 0) || !std::isfinite(c)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "capacity ", c, " is not a positive number: cannot share out "
          "local steps"));
    }
    sum += c;
  }
  for (int w = 0; w < n; ++w) {
    const double share = spec.local_steps() * n * capacities[w] / sum;
    steps[w] = static_cast<int32_t>(std::max(1.0, std::round(share)));
  }
  return steps;
}

}  // namespace twist::coordinator
