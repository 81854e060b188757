#include "common/ist/partition.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/base/rng.h"

namespace twist::common {

absl::StatusOr<UnitAssignment> AssignUnits(int num_units,
                                           const std::vector<int>& quotas,
                                           const PartitionKey& key,
                                           bool require_cover) {
  const int n = static_cast<int>(quotas.size());
  if (n == 0) {
    return absl::InvalidArgumentError(
        "cannot partition units among zero workers: at least one live worker "
        "is needed");
  }
  if (num_units < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unit count must be non-negative, got ", num_units));
  }
  int64_t total = 0;
  for (int w = 0; w < n; ++w) {
    if (quotas[w] < 0 || quotas[w] > num_units) {
      return absl::InvalidArgumentError(absl::StrCat(
          "quota ", quotas[w], " of worker ", w, " is outside [0, ", num_units,
          "]: a worker cannot hold more units than the layer has; lower the "
          "units per worker or the keep ratio"));
    }
    total += quotas[w];
  }
  if (require_cover && total < num_units) {
    return absl::InvalidArgumentError(absl::StrCat(
        "quotas sum to ", total, " but ", num_units,
        " units must all be covered: raise the units per worker or add "
        "workers"));
  }

  SplitMix64 rng(DeriveSeed({key.seed, static_cast<uint64_t>(key.round),
                             static_cast<uint64_t>(key.layer),
                             static_cast<uint64_t>(key.kind)}));
  std::vector<int> colours(num_units);
  std::iota(colours.begin(), colours.end(), 0);
  Shuffle(colours, rng);

  UnitAssignment hats(n);
  for (int w = 0; w < n; ++w) hats[w].reserve(quotas[w]);

  // Deal the shuffled colours round-robin over hats that still have room.
  int next_hat = 0;
  for (int colour : colours) {
    int hat = -1;
    for (int t = 0; t < n; ++t) {
      const int w = (next_hat + t) % n;
      if (static_cast<int>(hats[w].size()) < quotas[w]) {
        hat = w;
        break;
      }
    }
    if (hat < 0) break;  // every hat is full
    hats[hat].push_back(colour);
    next_hat = (hat + 1) % n;
  }

  // Top up each hat with colours it does not hold, drawn without replacement.
  std::vector<char> held(num_units);
  std::vector<int> candidates;
  for (int w = 0; w < n; ++w) {
    const int missing = quotas[w] - static_cast<int>(hats[w].size());
    if (missing <= 0) continue;
    std::fill(held.begin(), held.end(), 0);
    for (int c : hats[w]) held[c] = 1;
    candidates.clear();
    for (int c = 0; c < num_units; ++c) {
      if (!held[c]) candidates.push_back(c);
    }
    for (int i = 0; i < missing; ++i) {
      const size_t j = i + rng.UniformBelow(candidates.size() - i);
      std::swap(candidates[i], candidates[j]);
      hats[w].push_back(candidates[i]);
    }
  }

  for (auto& hat : hats) std::sort(hat.begin(), hat.end());
  return hats;
}

absl::StatusOr<std::vector<int>> QuotasFromKeepRatio(int num_units,
                                                     int num_workers,
                                                     double keep_ratio) {
  if (num_workers <= 0) {
    return absl::InvalidArgumentError("cannot compute quotas for zero workers");
  }
  if (!(keep_ratio > 0.0 && keep_ratio <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("keep ratio must be in (0, 1], got ", keep_ratio));
  }
  int quota = static_cast<int>(std::lround(keep_ratio * num_units));
  if (num_units > 0) quota = std::clamp(quota, 1, num_units);
  return std::vector<int>(num_workers, quota);
}

absl::StatusOr<std::vector<int>> QuotasFromCapacities(
    int num_units, const std::vector<double>& capacities, int total) {
  const int n = static_cast<int>(capacities.size());
  if (n == 0) {
    return absl::InvalidArgumentError("cannot compute quotas for zero workers");
  }
  for (int w = 0; w < n; ++w) {
    if (!(capacities[w] > 0.0) || !std::isfinite(capacities[w])) {
      return absl::InvalidArgumentError(
          absl::StrCat("capacity of worker ", w,
                       " must be a positive number, got ", capacities[w]));
    }
  }
  if (total < 0 ||
      static_cast<int64_t>(total) > static_cast<int64_t>(n) * num_units) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot hand out ", total, " units to ", n,
                     " workers of at most ", num_units, " units each"));
  }
  const int lower = total >= n ? 1 : 0;
  const int upper = num_units;

  // Proportional shares within the bounds: find the scale s with
  // sum_w clamp(s * c_w, lower, upper) == total. The sum grows with s from
  // n * lower to n * upper, which brackets `total`, so bisection finds it.
  auto share = [&](double s, int w) {
    return std::clamp(s * capacities[w], static_cast<double>(lower),
                      static_cast<double>(upper));
  };
  double lo_scale = 0.0, hi_scale = 0.0;
  for (int w = 0; w < n; ++w)
    hi_scale = std::max(hi_scale, upper / capacities[w]);
  for (int iter = 0; iter < 200; ++iter) {
    const double mid = 0.5 * (lo_scale + hi_scale);
    double sum = 0.0;
    for (int w = 0; w < n; ++w) sum += share(mid, w);
    (sum < total ? lo_scale : hi_scale) = mid;
  }

  // Floors, then the units left over to the largest fractional parts (ties to
  // the lower index). The floors sum to at most `total` because the shares at
  // hi_scale sum to at least `total`.
  std::vector<int> quota(n);
  std::vector<double> fraction(n);
  int64_t assigned = 0;
  for (int w = 0; w < n; ++w) {
    const double ideal = share(hi_scale, w);
    quota[w] = static_cast<int>(std::floor(ideal));
    fraction[w] = ideal - quota[w];
    assigned += quota[w];
  }
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return fraction[a] > fraction[b]; });
  while (assigned < total) {
    for (int w : order) {
      if (assigned == total) break;
      if (quota[w] < upper) {
        ++quota[w];
        ++assigned;
      }
    }
  }
  return quota;
}

int DefaultQuota(int num_units, int num_workers) {
  if (num_workers <= 1) return num_units;
  return (num_units + 1) / 2;
}

absl::StatusOr<UnitAssignment> RollingWindows(int num_units,
                                              const std::vector<int>& quotas,
                                              int64_t round) {
  const int n = static_cast<int>(quotas.size());
  if (n == 0) return absl::InvalidArgumentError("no workers to deal units to");
  UnitAssignment out(n);
  int64_t total = 0;
  for (int w = 0; w < n; ++w) {
    if (quotas[w] < 0 || quotas[w] > num_units) {
      return absl::InvalidArgumentError(
          absl::StrCat("quota ", quotas[w], " of worker ", w,
                       " is outside [0, ", num_units, "]"));
    }
    total += quotas[w];
  }
  int64_t before = 0;  // the quotas of the workers before w
  for (int w = 0; w < n; ++w) {
    const int64_t share = total == 0 ? 0 : before * num_units / total;
    before += quotas[w];
    if (num_units == 0) continue;
    const int64_t start = (share + round) % num_units;
    for (int i = 0; i < quotas[w]; ++i) {
      out[w].push_back(static_cast<int>((start + i) % num_units));
    }
    std::sort(out[w].begin(), out[w].end());
  }
  return out;
}

}  // namespace twist::common
