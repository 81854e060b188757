// "Balls in hats" assignment of a layer's units (attention heads or FFN
// columns) to workers, and the per-worker quotas that drive it.
//
// n hats (workers), k colours (units), hat w holds m_w colours, never one
// twice. Colours are shuffled, dealt round-robin into hats with room until each
// colour is placed once or every hat is full, then every hat with room left is
// topped up with random colours it does not hold yet. With sum(m_w) == k the
// result is a disjoint split; with more, every unit is covered and some are
// shared; with less, some units sit the round out.
//
// Everything is a pure function of its inputs and a key (job seed, round,
// layer, kind), through the project's own generator: identical on any
// platform.
#ifndef TWIST_COMMON_IST_PARTITION_H_
#define TWIST_COMMON_IST_PARTITION_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace twist::common {

enum class UnitKind : uint64_t { kHead = 0, kFfnColumn = 1 };

// Identifies one partition draw; two draws with equal keys are equal.
struct PartitionKey {
  uint64_t seed = 0;
  int64_t round = 0;
  int layer = 0;
  UnitKind kind = UnitKind::kHead;
};

// Unit ids held by each worker, ascending within a worker.
using UnitAssignment = std::vector<std::vector<int>>;

// Assigns `num_units` units to workers with the given quotas. Errors
// (InvalidArgument): no workers, a negative quota, a quota above num_units,
// or `require_cover` with quotas that sum below num_units.
absl::StatusOr<UnitAssignment> AssignUnits(int num_units,
                                           const std::vector<int>& quotas,
                                           const PartitionKey& key,
                                           bool require_cover);

// Rolling windows (FedRolex): worker w of n holds quotas[w] consecutive units
// (wrapping around) starting at floor(num_units * Q_w / Q) + round, where Q_w
// sums the quotas of the workers before w and Q all of them (w * num_units /
// n for equal quotas): so each worker keeps all but one of its units from one
// round to the next, and the windows lie end to end, covering every unit once,
// when the quotas add up to num_units. Ascending ids within a worker. Errors
// (InvalidArgument): no workers, a negative quota or one above num_units.
absl::StatusOr<UnitAssignment> RollingWindows(int num_units,
                                              const std::vector<int>& quotas,
                                              int64_t round);

// The same quota for each of `num_workers` workers: round(keep_ratio *
// num_units), at least 1 when the layer has units. keep_ratio in (0, 1].
absl::StatusOr<std::vector<int>> QuotasFromKeepRatio(int num_units,
                                                     int num_workers,
                                                     double keep_ratio);

// Quotas proportional to declared capacities that sum to `total` (largest
// remainder apportionment), each within [min(1, total / n), num_units].
// Errors: no workers, a non-positive capacity, or a total that cannot fit
// (total > n * num_units or total < 0).
absl::StatusOr<std::vector<int>> QuotasFromCapacities(
    int num_units, const std::vector<double>& capacities, int total);

// Default quota when a job gives neither counts nor a keep ratio: half of
// the layer's units, ceil(num_units / 2), or all of them for one worker. Two
// workers split the layer; with more, each unit is held by about n / 2 of
// them and their changes are averaged (subnetworks narrower than half a layer
// train markedly worse: docs/job-spec.md, "The default recipe").
int DefaultQuota(int num_units, int num_workers);

}  // namespace twist::common

#endif  // TWIST_COMMON_IST_PARTITION_H_
