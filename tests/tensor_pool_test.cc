#include "common/ist/tensor_pool.h"

#include <torch/torch.h>

#include "common/base/rng.h"
#include "common/ist/subnet.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::common {
namespace {

TEST(TensorPoolTest, HandsBackAReleasedTensorOfTheSameShape) {
  TensorPool pool;
  at::Tensor a = pool.Acquire({4, 8}, at::kFloat);
  const void* memory = a.data_ptr();
  a = at::Tensor();  // released
  at::Tensor b = pool.Acquire({4, 8}, at::kFloat);
  EXPECT_EQ(b.data_ptr(), memory);
  EXPECT_EQ(pool.NumTensors(), 1);
}

TEST(TensorPoolTest, NeverHandsOutATensorSomeoneStillHolds) {
  TensorPool pool;
  at::Tensor a = pool.Acquire({16}, at::kFloat);
  at::Tensor b = pool.Acquire({16}, at::kFloat);  // a is held
  EXPECT_NE(a.data_ptr(), b.data_ptr());
  // A view or a copied handle (a transfer in flight) keeps it taken.
  at::Tensor view = a.view({4, 4});
  const void* memory = a.data_ptr();
  a = at::Tensor();
  b = at::Tensor();
  at::Tensor c = pool.Acquire({16}, at::kFloat);
  EXPECT_NE(c.data_ptr(), memory);
  auto* in_flight = new at::Tensor(c);
  c = at::Tensor();
  at::Tensor d = pool.Acquire({16}, at::kFloat);
  EXPECT_NE(d.data_ptr(), in_flight->data_ptr());
  delete in_flight;
}

TEST(TensorPoolTest, ShapeAndDtypeMustMatch) {
  TensorPool pool;
  pool.Acquire({8}, at::kFloat);
  EXPECT_EQ(pool.Acquire({4, 2}, at::kFloat).sizes(), at::IntArrayRef({4, 2}));
  EXPECT_EQ(pool.Acquire({8}, at::kDouble).scalar_type(), at::kDouble);
  EXPECT_EQ(pool.NumTensors(), 3);
}

TEST(TensorPoolTest, TrimDropsWhatWasNotAskedForSinceTheLastTrim) {
  TensorPool pool;
  pool.Acquire({8}, at::kFloat);
  pool.Acquire({9}, at::kFloat);
  pool.Trim();  // both were used this round
  EXPECT_EQ(pool.NumTensors(), 2);
  pool.Acquire({8}, at::kFloat);
  pool.Trim();  // {9} was not
  EXPECT_EQ(pool.NumTensors(), 1);
  EXPECT_EQ(pool.NumBytes(), 8 * 4);
}

TEST(TensorPoolTest, PooledExtractionEqualsFreshExtractionRoundAfterRound) {
  const ModelConfig config = testing::SmallConfig();
  Gpt model = testing::MakeModel(config, 3);
  const NamedTensors full = ParameterTensors(*model);
  TensorPool pool;
  SplitMix64 rng(5);
  for (int round = 1; round <= 3; ++round) {
    std::vector<SubnetUnits> plan;
    for (int k = 0; k < 3; ++k)
      plan.push_back(testing::RandomUnits(config, rng));
    auto pooled = ExtractSubnets(config, full, plan, at::kFloat, &pool);
    auto fresh = ExtractSubnets(config, full, plan, at::kFloat);
    ASSERT_TRUE(pooled.ok() && fresh.ok());
    for (size_t k = 0; k < plan.size(); ++k) {
      for (const auto& [name, t] : (*fresh)[k]) {
        EXPECT_TRUE(torch::equal(*(*pooled)[k].Find(name), t)) << name;
      }
    }
    pool.Trim();
  }
  EXPECT_GT(pool.NumTensors(), 0);
}

}  // namespace
}  // namespace twist::common
