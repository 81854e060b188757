#include "common/ist/partition.h"

#include <algorithm>
#include <iterator>
#include <numeric>
#include <set>

#include "common/base/rng.h"
#include "gtest/gtest.h"

namespace twist::common {
namespace {

PartitionKey Key(uint64_t seed, int64_t round, int layer = 0,
                 UnitKind kind = UnitKind::kHead) {
  return PartitionKey{seed, round, layer, kind};
}

// A random request: n workers, k units, quotas in [0, k].
struct Request {
  int num_units;
  std::vector<int> quotas;
};

Request RandomRequest(SplitMix64& rng) {
  Request r;
  r.num_units = 1 + static_cast<int>(rng.UniformBelow(48));
  const int n = 1 + static_cast<int>(rng.UniformBelow(9));
  for (int w = 0; w < n; ++w) {
    r.quotas.push_back(static_cast<int>(rng.UniformBelow(r.num_units + 1)));
  }
  return r;
}

TEST(PartitionTest, PropertiesHoldOverRandomRequests) {
  SplitMix64 rng(2024);
  for (int trial = 0; trial < 2000; ++trial) {
    const Request r = RandomRequest(rng);
    const int total = std::accumulate(r.quotas.begin(), r.quotas.end(), 0);
    auto hats = AssignUnits(r.num_units, r.quotas, Key(trial, trial % 7),
                            /*require_cover=*/false);
    ASSERT_TRUE(hats.ok()) << hats.status();
    ASSERT_EQ(hats->size(), r.quotas.size());
    std::vector<int> holders(r.num_units, 0);
    for (size_t w = 0; w < hats->size(); ++w) {
      const auto& hat = (*hats)[w];
      // Quota respected exactly.
      ASSERT_EQ(static_cast<int>(hat.size()), r.quotas[w]) << "trial " << trial;
      // Ascending, hence no unit twice in one worker; ids in range.
      for (size_t i = 0; i < hat.size(); ++i) {
        ASSERT_GE(hat[i], 0);
        ASSERT_LT(hat[i], r.num_units);
        if (i > 0) ASSERT_LT(hat[i - 1], hat[i]);
        ++holders[hat[i]];
      }
    }
    const int covered = static_cast<int>(std::count_if(
        holders.begin(), holders.end(), [](int h) { return h > 0; }));
    // Every unit covered whenever the quotas allow it, else no unit twice.
    EXPECT_EQ(covered, std::min(total, r.num_units)) << "trial " << trial;
    if (total == r.num_units) {
      for (int h : holders) EXPECT_EQ(h, 1) << "not disjoint, trial " << trial;
    }
    if (total <= r.num_units) {
      for (int h : holders) EXPECT_LE(h, 1) << "trial " << trial;
    }
  }
}

TEST(PartitionTest, DisjointSplitWhenQuotasSumToUnitCount) {
  for (int round = 0; round < 50; ++round) {
    auto hats = AssignUnits(12, {4, 4, 4}, Key(5, round), true);
    ASSERT_TRUE(hats.ok());
    std::vector<int> all;
    for (const auto& hat : *hats) all.insert(all.end(), hat.begin(), hat.end());
    std::sort(all.begin(), all.end());
    std::vector<int> expected(12);
    std::iota(expected.begin(), expected.end(), 0);
    EXPECT_EQ(all, expected);
  }
}

TEST(PartitionTest, SameKeySameResult) {
  SplitMix64 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    const Request r = RandomRequest(rng);
    const PartitionKey key =
        Key(rng.Next(), trial, trial % 3,
            trial % 2 ? UnitKind::kHead : UnitKind::kFfnColumn);
    auto a = AssignUnits(r.num_units, r.quotas, key, false);
    auto b = AssignUnits(r.num_units, r.quotas, key, false);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(*a, *b);
  }
}

TEST(PartitionTest, DifferentRoundsLayersAndKindsGiveDifferentResults) {
  // 16 units in 4 hats of 4: about 2.6e6 distinct partitions, so equal
  // draws from different keys would mean the key is ignored.
  const std::vector<int> quotas(4, 4);
  std::set<UnitAssignment> seen;
  for (int round = 0; round < 20; ++round) {
    for (int layer = 0; layer < 3; ++layer) {
      for (UnitKind kind : {UnitKind::kHead, UnitKind::kFfnColumn}) {
        auto hats = AssignUnits(16, quotas, Key(99, round, layer, kind), true);
        ASSERT_TRUE(hats.ok());
        seen.insert(*hats);
      }
    }
  }
  EXPECT_EQ(seen.size(), 20u * 3 * 2);
  auto other_seed = AssignUnits(16, quotas, Key(100, 0), true);
  EXPECT_EQ(seen.count(*other_seed), 0u);
}

TEST(PartitionTest, IsPinnedAcrossPlatforms) {
  // A partition is part of a job's reproducible record: these values must
  // not change with the compiler, standard library or CPU.
  auto hats =
      AssignUnits(8, {3, 3, 3}, Key(1234, 5, 2, UnitKind::kFfnColumn), true);
  ASSERT_TRUE(hats.ok());
  const UnitAssignment expected = {{2, 3, 4}, {1, 6, 7}, {0, 4, 5}};
  EXPECT_EQ(*hats, expected);
}

TEST(PartitionTest, OverlappingQuotasCoverThenFill) {
  // 4 heads, 3 workers of 2: every head held, two of them twice.
  for (int round = 0; round < 100; ++round) {
    auto hats = AssignUnits(4, {2, 2, 2}, Key(3, round), true);
    ASSERT_TRUE(hats.ok());
    std::vector<int> holders(4, 0);
    for (const auto& hat : *hats) {
      ASSERT_EQ(hat.size(), 2u);
      for (int u : hat) ++holders[u];
    }
    for (int h : holders) EXPECT_GE(h, 1);
    EXPECT_EQ(std::accumulate(holders.begin(), holders.end(), 0), 6);
  }
}

TEST(PartitionTest, RejectsImpossibleRequests) {
  auto none = AssignUnits(4, {}, Key(1, 0), true);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(none.status().message().find("zero workers"), std::string::npos);

  auto too_big = AssignUnits(4, {2, 5}, Key(1, 0), false);
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_big.status().message().find("quota 5 of worker 1"),
            std::string::npos)
      << too_big.status();

  auto negative = AssignUnits(4, {-1, 2}, Key(1, 0), false);
  EXPECT_EQ(negative.status().code(), absl::StatusCode::kInvalidArgument);

  auto uncovered = AssignUnits(10, {3, 3}, Key(1, 0), /*require_cover=*/true);
  EXPECT_EQ(uncovered.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(uncovered.status().message().find("sum to 6 but 10"),
            std::string::npos)
      << uncovered.status();
  // Without the coverage requirement, the same request is fine.
  EXPECT_TRUE(AssignUnits(10, {3, 3}, Key(1, 0), false).ok());
}

// Windows of unequal quotas lie end to end: every unit once when the quotas
// add up to the units, each worker keeping all but one of its units from one
// round to the next; equal quotas start where they always did (w * k / n).
TEST(PartitionTest, RollingWindowsOfUnequalQuotasLieEndToEnd) {
  EXPECT_EQ(*RollingWindows(4, {1, 3}, 0),
            (UnitAssignment{{0}, {1, 2, 3}}));
  EXPECT_EQ(*RollingWindows(4, {1, 3}, 1),
            (UnitAssignment{{1}, {0, 2, 3}}));
  EXPECT_EQ(*RollingWindows(8, {2, 2, 2, 2}, 3),
            (UnitAssignment{{3, 4}, {5, 6}, {0, 7}, {1, 2}}));
  for (const std::vector<int>& quotas :
       {std::vector<int>{16, 48}, {40, 24}, {10, 30, 24}, {1, 1, 62}}) {
    UnitAssignment last;
    for (int64_t round = 1; round <= 70; ++round) {
      const UnitAssignment now = *RollingWindows(64, quotas, round);
      std::vector<int> all;
      for (size_t w = 0; w < quotas.size(); ++w) {
        EXPECT_EQ(static_cast<int>(now[w].size()), quotas[w]);
        all.insert(all.end(), now[w].begin(), now[w].end());
        if (!last.empty()) {
          std::vector<int> kept;
          std::set_intersection(now[w].begin(), now[w].end(),
                                last[w].begin(), last[w].end(),
                                std::back_inserter(kept));
          EXPECT_EQ(static_cast<int>(kept.size()), quotas[w] - 1);
        }
      }
      std::sort(all.begin(), all.end());
      std::vector<int> every(64);
      std::iota(every.begin(), every.end(), 0);
      EXPECT_EQ(all, every) << "round " << round;
      last = now;
    }
  }
}

TEST(PartitionTest, ZeroUnitsGivesEmptyHats) {
  auto hats = AssignUnits(0, {0, 0}, Key(1, 0), true);
  ASSERT_TRUE(hats.ok());
  EXPECT_EQ(*hats, UnitAssignment(2));
}

TEST(QuotaTest, KeepRatioRoundsAndKeepsAtLeastOneUnit) {
  EXPECT_EQ(*QuotasFromKeepRatio(8, 3, 0.5), std::vector<int>(3, 4));
  EXPECT_EQ(*QuotasFromKeepRatio(4, 2, 0.1), std::vector<int>(2, 1));
  EXPECT_EQ(*QuotasFromKeepRatio(512, 4, 0.25), std::vector<int>(4, 128));
  EXPECT_EQ(*QuotasFromKeepRatio(6, 2, 1.0), std::vector<int>(2, 6));
  EXPECT_EQ(QuotasFromKeepRatio(8, 2, 0.0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(QuotasFromKeepRatio(8, 2, 1.5).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(QuotasFromKeepRatio(8, 0, 0.5).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(QuotaTest, DefaultQuotaIsHalfALayerOrAllOfItAlone) {
  EXPECT_EQ(DefaultQuota(8, 1), 8);
  EXPECT_EQ(DefaultQuota(8, 2), 4);
  EXPECT_EQ(DefaultQuota(8, 3), 4);
  EXPECT_EQ(DefaultQuota(4, 8), 2);
  EXPECT_EQ(DefaultQuota(3, 4), 2);
  EXPECT_EQ(DefaultQuota(1, 2), 1);
}

TEST(QuotaTest, CapacityProportionalQuotas) {
  EXPECT_EQ(*QuotasFromCapacities(8, {1, 1, 2}, 8),
            (std::vector<int>{2, 2, 4}));
  EXPECT_EQ(*QuotasFromCapacities(12, {1, 2, 3}, 12),
            (std::vector<int>{2, 4, 6}));
  // Largest remainder: ideal 10/3 each -> 4, 3, 3 (ties to the lower index).
  EXPECT_EQ(*QuotasFromCapacities(16, {1, 1, 1}, 10),
            (std::vector<int>{4, 3, 3}));
  // A share above the unit count is capped and the rest shared out.
  EXPECT_EQ(*QuotasFromCapacities(4, {10, 1, 1}, 8),
            (std::vector<int>{4, 2, 2}));
  // Every worker keeps at least one unit when there are enough to go round.
  EXPECT_EQ(*QuotasFromCapacities(8, {100, 1}, 8), (std::vector<int>{7, 1}));
  // The case that needs upper bounds settled before lower ones.
  EXPECT_EQ(*QuotasFromCapacities(3, {1, 5, 100}, 6),
            (std::vector<int>{1, 2, 3}));
}

TEST(QuotaTest, CapacityQuotasSumToTotalWithinBoundsOverRandomRequests) {
  SplitMix64 rng(77);
  for (int trial = 0; trial < 2000; ++trial) {
    const int k = 1 + static_cast<int>(rng.UniformBelow(64));
    const int n = 1 + static_cast<int>(rng.UniformBelow(8));
    std::vector<double> caps;
    for (int w = 0; w < n; ++w) caps.push_back(0.1 + 10 * rng.UniformDouble());
    const int total = static_cast<int>(rng.UniformBelow(n * k + 1));
    auto q = QuotasFromCapacities(k, caps, total);
    ASSERT_TRUE(q.ok()) << q.status();
    EXPECT_EQ(std::accumulate(q->begin(), q->end(), 0), total);
    for (int w = 0; w < n; ++w) {
      EXPECT_LE((*q)[w], k);
      EXPECT_GE((*q)[w], total >= n ? 1 : 0);
    }
    // A worker with more capacity never gets fewer units, up to rounding.
    for (int a = 0; a < n; ++a) {
      for (int b = 0; b < n; ++b) {
        if (caps[a] > caps[b]) EXPECT_GE((*q)[a] + 1, (*q)[b]);
      }
    }
    // The quotas are usable by the partitioner.
    EXPECT_TRUE(AssignUnits(k, *q, Key(trial, 0), total >= k).ok());
  }
}

TEST(QuotaTest, CapacityQuotasRejectBadInput) {
  EXPECT_EQ(QuotasFromCapacities(4, {}, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(QuotasFromCapacities(4, {1, 0}, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(QuotasFromCapacities(4, {1, 1}, 9).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace twist::common
