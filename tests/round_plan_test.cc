// Tests of round planning (which units each worker holds in a round) and of
// the wire form of assignments and tensor announcements.
#include "coordinator/round_plan.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "common/transport/subnet_proto.h"
#include "coordinator/job_spec.h"
#include "gtest/gtest.h"

namespace twist::coordinator {
namespace {

using ::twist::common::LayerUnits;
using ::twist::common::ModelConfig;
using ::twist::common::SubnetUnits;
using ::twist::v1::JobSpec;

// 2 layers of 4 heads (D=4) and F = 64 columns.
ModelConfig Config() { return ModelConfig::Full(2, 4, 16, 8, 16); }

// The random deal (balls in hats); tests of rolling windows set theirs.
JobSpec Spec() {
  JobSpec spec;
  spec.set_seed(7);
  spec.set_deal(twist::v1::DEAL_RANDOM);
  ApplyDefaults(&spec);
  return spec;
}

std::vector<SubnetUnits> Plan(const JobSpec& spec, int32_t round,
                              const std::vector<double>& capacities) {
  auto plan = PlanRound(spec, Config(), round, capacities);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.ok() ? *plan : std::vector<SubnetUnits>();
}

const std::vector<int>& Units(const SubnetUnits& u, int layer, bool heads) {
  return heads ? u.layers[layer].heads : u.layers[layer].ffn_columns;
}

std::vector<int> Iota(int n) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// Every unit id of one layer and kind over all workers, sorted (repeats kept).
std::vector<int> AllHeld(const std::vector<SubnetUnits>& plan, int layer,
                         bool heads) {
  std::vector<int> all;
  for (const auto& u : plan) {
    const auto& ids = Units(u, layer, heads);
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
    all.insert(all.end(), ids.begin(), ids.end());
  }
  std::sort(all.begin(), all.end());
  return all;
}

TEST(PlanRoundTest, DefaultSplitIsDisjointAndCoversEveryUnit) {
  const std::vector<SubnetUnits> plan = Plan(Spec(), 1, {1.0, 1.0});
  ASSERT_EQ(plan.size(), 2u);
  for (int w = 0; w < 2; ++w) {
    ASSERT_EQ(plan[w].layers.size(), 2u);
    for (int l = 0; l < 2; ++l) {
      EXPECT_EQ(Units(plan[w], l, true).size(), 2u) << w << " " << l;
      EXPECT_EQ(Units(plan[w], l, false).size(), 32u) << w << " " << l;
    }
  }
  for (int l = 0; l < 2; ++l) {
    // Sorted with no repeats and equal to 0..k-1: disjoint and covering.
    EXPECT_EQ(AllHeld(plan, l, true), Iota(4)) << "layer " << l;
    EXPECT_EQ(AllHeld(plan, l, false), Iota(64)) << "layer " << l;
  }
}

TEST(PlanRoundTest, PastTwoWorkersEachHoldsHalfOfEveryLayer) {
  // 4 workers, each with half of every layer (2 of 4 heads, 32 of 64
  // columns): every unit is held, by two workers each under rolling windows.
  for (auto deal : {twist::v1::DEAL_RANDOM, twist::v1::DEAL_ROLLING}) {
    JobSpec spec = Spec();
    spec.set_deal(deal);
    const std::vector<SubnetUnits> plan = Plan(spec, 3, {1.0, 1.0, 1.0, 1.0});
    ASSERT_EQ(plan.size(), 4u);
    for (int l = 0; l < 2; ++l) {
      for (int w = 0; w < 4; ++w) {
        EXPECT_EQ(Units(plan[w], l, true).size(), 2u) << w;
        EXPECT_EQ(Units(plan[w], l, false).size(), 32u) << w;
      }
      std::vector<int> heads = AllHeld(plan, l, true);
      std::vector<int> columns = AllHeld(plan, l, false);
      if (deal == twist::v1::DEAL_ROLLING) {
        std::vector<int> twice;
        for (int u : Iota(4)) twice.insert(twice.end(), {u, u});
        EXPECT_EQ(heads, twice);
      }
      heads.erase(std::unique(heads.begin(), heads.end()), heads.end());
      EXPECT_EQ(heads, Iota(4));
      columns.erase(std::unique(columns.begin(), columns.end()), columns.end());
      EXPECT_EQ(columns, Iota(64));
    }
  }
}

// keep_ratio 1/n names the disjoint split, the default before half of each
// layer: 4 workers with a quarter each, every unit held once.
TEST(PlanRoundTest, KeepRatioOfOneOverNIsTheDisjointSplit) {
  for (auto deal : {twist::v1::DEAL_RANDOM, twist::v1::DEAL_ROLLING}) {
    JobSpec spec = Spec();
    spec.set_deal(deal);
    spec.set_keep_ratio(0.25);
    const std::vector<SubnetUnits> plan = Plan(spec, 5, {1.0, 1.0, 1.0, 1.0});
    ASSERT_EQ(plan.size(), 4u);
    for (int l = 0; l < 2; ++l) {
      for (int w = 0; w < 4; ++w) {
        EXPECT_EQ(Units(plan[w], l, true).size(), 1u) << w;
        EXPECT_EQ(Units(plan[w], l, false).size(), 16u) << w;
      }
      EXPECT_EQ(AllHeld(plan, l, true), Iota(4)) << "layer " << l;
      EXPECT_EQ(AllHeld(plan, l, false), Iota(64)) << "layer " << l;
    }
  }
}

TEST(PlanRoundTest, UnevenDefaultSplitStillCoversEveryUnit) {
  // 3 heads a layer over 3 workers: ceil(3 / 2) = 2 each, 6 places for 3.
  auto plan = PlanRound(Spec(), ModelConfig::Full(2, 3, 12, 8, 16), 1,
                        {1.0, 1.0, 1.0});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->size(), 3u);
  for (int l = 0; l < 2; ++l) {
    std::vector<int> heads = AllHeld(*plan, l, true);
    EXPECT_EQ(heads.size(), 6u);
    heads.erase(std::unique(heads.begin(), heads.end()), heads.end());
    EXPECT_EQ(heads, Iota(3));
    std::vector<int> columns = AllHeld(*plan, l, false);
    EXPECT_EQ(columns.size(), 72u);  // ceil(48 / 2) = 24 each
    columns.erase(std::unique(columns.begin(), columns.end()), columns.end());
    EXPECT_EQ(columns, Iota(48));
  }
}

TEST(PlanRoundTest, UnitCountsPerWorkerAreRespected) {
  JobSpec spec = Spec();
  spec.set_heads_per_worker(1);
  spec.set_ffn_columns_per_worker(5);
  const std::vector<SubnetUnits> plan = Plan(spec, 3, {1.0, 1.0});
  ASSERT_EQ(plan.size(), 2u);
  for (int l = 0; l < 2; ++l) {
    for (int w = 0; w < 2; ++w) {
      EXPECT_EQ(Units(plan[w], l, true).size(), 1u);
      EXPECT_EQ(Units(plan[w], l, false).size(), 5u);
    }
    // Fewer places than units: dealt without repeats.
    std::vector<int> heads = AllHeld(plan, l, true);
    EXPECT_EQ(std::unique(heads.begin(), heads.end()), heads.end());
    std::vector<int> columns = AllHeld(plan, l, false);
    EXPECT_EQ(std::unique(columns.begin(), columns.end()), columns.end());
  }
}

TEST(PlanRoundTest, CountsWinOverKeepRatio) {
  JobSpec spec = Spec();
  spec.set_heads_per_worker(3);
  spec.set_keep_ratio(0.25);
  const std::vector<SubnetUnits> plan = Plan(spec, 1, {1.0, 1.0});
  for (int w = 0; w < 2; ++w) {
    EXPECT_EQ(Units(plan[w], 0, true).size(), 3u);    // the count
    EXPECT_EQ(Units(plan[w], 0, false).size(), 16u);  // the ratio: 0.25 * 64
  }
}

TEST(PlanRoundTest, KeepRatioSetsEveryWorkersShare) {
  JobSpec spec = Spec();
  spec.set_keep_ratio(0.75);
  const std::vector<SubnetUnits> plan = Plan(spec, 2, {1.0, 1.0, 1.0});
  ASSERT_EQ(plan.size(), 3u);
  for (int w = 0; w < 3; ++w) {
    for (int l = 0; l < 2; ++l) {
      EXPECT_EQ(Units(plan[w], l, true).size(), 3u);    // round(0.75 * 4)
      EXPECT_EQ(Units(plan[w], l, false).size(), 48u);  // 0.75 * 64
    }
  }
}

// Declared or learned capacities (the plan does not know which: both arrive
// as numbers), dealt at random and in rolling windows.
TEST(PlanRoundTest, UnequalQuotasGiveMoreUnitsToABiggerCapacity) {
  for (auto quota : {twist::v1::QUOTA_DECLARED, twist::v1::QUOTA_LEARNED}) {
    for (auto deal : {twist::v1::DEAL_RANDOM, twist::v1::DEAL_ROLLING}) {
      JobSpec spec = Spec();
      spec.set_quota(quota);
      spec.set_deal(deal);
      const std::vector<SubnetUnits> plan = Plan(spec, 1, {1.0, 3.0});
      ASSERT_EQ(plan.size(), 2u);
      for (int l = 0; l < 2; ++l) {
        // Two workers' default total, 4 heads and 64 columns, dealt 1 : 3.
        EXPECT_EQ(Units(plan[0], l, true).size(), 1u);
        EXPECT_EQ(Units(plan[1], l, true).size(), 3u);
        EXPECT_EQ(Units(plan[0], l, false).size(), 16u);
        EXPECT_EQ(Units(plan[1], l, false).size(), 48u);
        EXPECT_EQ(AllHeld(plan, l, true), Iota(4));
        EXPECT_EQ(AllHeld(plan, l, false), Iota(64));
      }
    }
  }
}

// quota_in: local_steps keeps the equal quotas' units and shares out local
// steps instead: in proportion to the capacities, about n * local_steps in
// all, at least 1 each.
TEST(PlanRoundTest, QuotaInLocalStepsKeepsUnitsEqualAndSharesOutSteps) {
  for (auto quota : {twist::v1::QUOTA_DECLARED, twist::v1::QUOTA_LEARNED}) {
    JobSpec spec = Spec();
    spec.set_quota(quota);
    spec.set_quota_in(twist::v1::QUOTA_IN_LOCAL_STEPS);
    spec.set_local_steps(50);
    const std::vector<SubnetUnits> plan = Plan(spec, 1, {1.0, 3.0});
    ASSERT_EQ(plan.size(), 2u);
    for (int w = 0; w < 2; ++w) {
      EXPECT_EQ(Units(plan[w], 0, true).size(), 2u);
      EXPECT_EQ(Units(plan[w], 0, false).size(), 32u);
    }
    EXPECT_EQ(*LocalStepsPerSlot(spec, {1.0, 3.0}),
              (std::vector<int32_t>{25, 75}));
    EXPECT_EQ(*LocalStepsPerSlot(spec, {2.0, 1.0, 1.0}),
              (std::vector<int32_t>{75, 38, 38}));  // 37.5 rounds up
    EXPECT_EQ(*LocalStepsPerSlot(spec, {1.0, 1000.0}),
              (std::vector<int32_t>{1, 100}));
    EXPECT_EQ(*LocalStepsPerSlot(spec, {5.0}), (std::vector<int32_t>{50}));
    EXPECT_FALSE(LocalStepsPerSlot(spec, {1.0, 0.0}).ok());
    EXPECT_FALSE(LocalStepsPerSlot(spec, {1.0, std::nan("")}).ok());
  }
  // Units shared out (the default), or equal quotas: the job's steps.
  JobSpec spec = Spec();
  spec.set_local_steps(50);
  spec.set_quota(twist::v1::QUOTA_LEARNED);
  EXPECT_EQ(*LocalStepsPerSlot(spec, {1.0, 3.0}),
            (std::vector<int32_t>{50, 50}));
  spec.set_quota(twist::v1::QUOTA_EQUAL);
  spec.set_quota_in(twist::v1::QUOTA_IN_LOCAL_STEPS);
  EXPECT_EQ(*LocalStepsPerSlot(spec, {1.0, 3.0}),
            (std::vector<int32_t>{50, 50}));
}

TEST(PlanRoundTest, CapacitiesAreIgnoredWithEqualQuotas) {
  for (auto deal : {twist::v1::DEAL_RANDOM, twist::v1::DEAL_ROLLING}) {
    JobSpec spec = Spec();
    spec.set_deal(deal);
    const std::vector<SubnetUnits> plan = Plan(spec, 1, {1.0, 3.0});
    for (int w = 0; w < 2; ++w) {
      EXPECT_EQ(Units(plan[w], 0, true).size(), 2u);
      EXPECT_EQ(Units(plan[w], 0, false).size(), 32u);
    }
  }
}

TEST(PlanRoundTest, LocalSgdGivesEveryWorkerEveryUnit) {
  JobSpec spec = Spec();
  spec.set_mode(twist::v1::MODE_LOCAL_SGD);
  const std::vector<SubnetUnits> plan = Plan(spec, 4, {1.0, 2.0, 5.0});
  ASSERT_EQ(plan.size(), 3u);
  for (const SubnetUnits& units : plan) {
    EXPECT_TRUE(units == common::AllUnits(Config()));
    ASSERT_EQ(units.layers.size(), 2u);
    for (int l = 0; l < 2; ++l) {
      EXPECT_EQ(units.layers[l].heads, Iota(4));
      EXPECT_EQ(units.layers[l].ffn_columns, Iota(64));
    }
  }
}

TEST(PlanRoundTest, SameSeedAndRoundGiveTheSamePlanOtherRoundsDiffer) {
  const JobSpec spec = Spec();
  const std::vector<SubnetUnits> a = Plan(spec, 5, {1.0, 1.0});
  const std::vector<SubnetUnits> b = Plan(spec, 5, {1.0, 1.0});
  const std::vector<SubnetUnits> c = Plan(spec, 6, {1.0, 1.0});
  ASSERT_EQ(a.size(), 2u);
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a == c);
  EXPECT_NE(a[0].layers[0].ffn_columns, c[0].layers[0].ffn_columns);

  JobSpec other_seed = spec;
  other_seed.set_seed(8);
  EXPECT_FALSE(a == Plan(other_seed, 5, {1.0, 1.0}));
}

TEST(PlanRoundTest, ZeroWorkersIsAnError) {
  for (auto mode : {twist::v1::MODE_TWIST, twist::v1::MODE_LOCAL_SGD}) {
    JobSpec spec = Spec();
    spec.set_mode(mode);
    auto plan = PlanRound(spec, Config(), 1, {});
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(plan.status().message(), "no live workers to plan a round for");
  }
}

TEST(SubnetProtoTest, ToProtoAndFromProtoRoundTrip) {
  SubnetUnits units;
  units.layers.push_back(LayerUnits{{0, 2}, {1, 5, 9}});
  units.layers.push_back(LayerUnits{{}, {}});  // a layer holding nothing
  units.layers.push_back(LayerUnits{{3}, {0}});
  const twist::v1::SubnetAssignment proto = common::ToProto(units);
  ASSERT_EQ(proto.layers_size(), 3);
  EXPECT_EQ(std::vector<int>(proto.layers(0).heads().begin(),
                             proto.layers(0).heads().end()),
            (std::vector<int>{0, 2}));
  EXPECT_EQ(std::vector<int>(proto.layers(0).ffn_columns().begin(),
                             proto.layers(0).ffn_columns().end()),
            (std::vector<int>{1, 5, 9}));
  EXPECT_EQ(proto.layers(1).heads_size(), 0);
  EXPECT_EQ(proto.layers(1).ffn_columns_size(), 0);
  EXPECT_EQ(proto.layers(2).heads(0), 3);

  twist::v1::SubnetAssignment parsed;
  ASSERT_TRUE(parsed.ParseFromString(proto.SerializeAsString()));
  EXPECT_TRUE(common::FromProto(parsed) == units);
  // A whole plan survives the trip too.
  for (const SubnetUnits& u : Plan(Spec(), 1, {1.0, 1.0})) {
    EXPECT_TRUE(common::FromProto(common::ToProto(u)) == u);
  }
}

twist::v1::TensorInfo Info(const std::string& name, std::vector<int64_t> shape,
                           twist::v1::DType dtype) {
  twist::v1::TensorInfo info;
  info.set_name(name);
  for (int64_t d : shape) info.add_shape(d);
  info.set_dtype(dtype);
  return info;
}

TEST(AllocateTensorsTest, AllocatesTheAnnouncedShapesAndTypesInOrder) {
  google::protobuf::RepeatedPtrField<twist::v1::TensorInfo> infos;
  *infos.Add() = Info("w", {2, 3}, twist::v1::DTYPE_FLOAT32);
  *infos.Add() = Info("ids", {4}, twist::v1::DTYPE_INT64);
  *infos.Add() = Info("scalar", {}, twist::v1::DTYPE_FLOAT64);
  // 24 + 32 + 8 bytes: exactly at the limit.
  absl::StatusOr<common::NamedTensors> t = common::AllocateTensors(infos, 64);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->size(), 3u);
  EXPECT_EQ((*t)[0].name, "w");
  EXPECT_EQ((*t)[0].tensor.sizes().vec(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ((*t)[0].tensor.scalar_type(), at::kFloat);
  EXPECT_EQ((*t)[1].name, "ids");
  EXPECT_EQ((*t)[1].tensor.sizes().vec(), (std::vector<int64_t>{4}));
  EXPECT_EQ((*t)[1].tensor.scalar_type(), at::kLong);
  EXPECT_EQ((*t)[2].tensor.dim(), 0);
  EXPECT_EQ((*t)[2].tensor.scalar_type(), at::kDouble);
  EXPECT_EQ(t->NumBytes(), 64);

  // DescribeTensors gives the same announcements back.
  const auto described = common::DescribeTensors(*t);
  ASSERT_EQ(described.size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(described.Get(i).SerializeAsString(),
              infos.Get(i).SerializeAsString())
        << i;
  }
}

TEST(AllocateTensorsTest, RefusesBadAnnouncements) {
  struct Case {
    std::vector<twist::v1::TensorInfo> infos;
    int64_t max_bytes;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{Info("a", {2}, twist::v1::DTYPE_FLOAT32),
        Info("a", {2}, twist::v1::DTYPE_FLOAT32)},
       1000,
       "tensor 'a' is announced twice"},
      {{Info("b", {2}, twist::v1::DTYPE_UNSPECIFIED)}, 1000, "tensor 'b': "},
      {{Info("c", {2, -1}, twist::v1::DTYPE_FLOAT32)},
       1000,
       "tensor 'c' has an impossible shape"},
      {{Info("d", {1 << 20, 1 << 20, 1 << 20}, twist::v1::DTYPE_UINT8)},
       int64_t{1} << 62,
       "tensor 'd' has an impossible shape"},
      {{Info("e", {4}, twist::v1::DTYPE_FLOAT32),
        Info("f", {10}, twist::v1::DTYPE_FLOAT32)},
       55,
       "announced tensors exceed 55 bytes at 'f'"},
  };
  for (const Case& c : cases) {
    google::protobuf::RepeatedPtrField<twist::v1::TensorInfo> infos;
    for (const auto& info : c.infos) *infos.Add() = info;
    absl::StatusOr<common::NamedTensors> t =
        common::AllocateTensors(infos, c.max_bytes);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument)
        << c.message;
    // Exact, or a prefix for the dtype case (its tail comes from the codec).
    EXPECT_EQ(std::string(t.status().message()).substr(0, c.message.size()),
              c.message)
        << t.status();
    if (c.message == "tensor 'b': ") {
      EXPECT_GT(t.status().message().size(), c.message.size());
    } else {
      EXPECT_EQ(t.status().message(), c.message);
    }
  }
}

}  // namespace
}  // namespace twist::coordinator
