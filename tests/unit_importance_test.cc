// Structured-pruning scores (common/ist/unit_importance.h): a unit whose
// weights are zero scores lowest by magnitude, a unit whose output never
// varies scores zero by fluctuation, and the best units are kept in the
// counts a random subnetwork of the same keep ratio has.
#include "common/ist/unit_importance.h"

#include "common/ist/pruning.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::common {
namespace {

using ::twist::testing::MakeModel;
using ::twist::testing::RandomTokens;
using ::twist::testing::SmallConfig;

TEST(UnitImportanceTest, MagnitudeDropsZeroedUnits) {
  const ModelConfig config = SmallConfig();  // 4 heads of 16, F = 256
  Gpt model = MakeModel(config, 1);
  {
    torch::NoGradGuard no_grad;
    auto& block = model->transformer->blocks[1];
    block->attn->c_attn->weight.view({3, 4, 16, 64}).select(1, 2).zero_();
    block->attn->c_proj->weight.view({64, 4, 16}).select(1, 2).zero_();
    block->mlp->c_fc->weight[7].zero_();
    block->mlp->c_fc->bias[7].zero_();
    block->mlp->c_proj->weight.select(1, 7).zero_();
  }
  const UnitScores scores = MagnitudeScores(*model);
  EXPECT_EQ(scores.heads[1].argmin().item<int64_t>(), 2);
  EXPECT_EQ(scores.ffn[1].argmin().item<int64_t>(), 7);
  absl::StatusOr<SubnetUnits> units = TopUnits(config, scores, 0.75);
  ASSERT_TRUE(units.ok()) << units.status();
  EXPECT_EQ(units->layers[1].heads, (std::vector<int>{0, 1, 3}));
  auto random = RandomSubnet(config, 0.75, 5);
  ASSERT_TRUE(random.ok());
  for (int l = 0; l < config.n_layer; ++l) {
    EXPECT_EQ(units->layers[l].heads.size(), random->layers[l].heads.size());
    EXPECT_EQ(units->layers[l].ffn_columns.size(),
              random->layers[l].ffn_columns.size());
    const auto& cols = units->layers[l].ffn_columns;
    EXPECT_TRUE(std::is_sorted(cols.begin(), cols.end()));
  }
  EXPECT_EQ(std::count(units->layers[1].ffn_columns.begin(),
                       units->layers[1].ffn_columns.end(), 7),
            0);
}

TEST(UnitImportanceTest, FluctuationIsZeroForAConstantOrUnusedUnit) {
  const ModelConfig config = SmallConfig();
  Gpt model = MakeModel(config, 2);
  {
    torch::NoGradGuard no_grad;
    auto& block = model->transformer->blocks[2];
    // Column 11's pre-activation is its bias alone: a constant output.
    block->mlp->c_fc->weight[11].zero_();
    block->mlp->c_fc->bias[11].fill_(0.5);
    // Head 3's output is never used.
    block->attn->c_proj->weight.view({64, 4, 16}).select(1, 3).zero_();
  }
  const UnitScores scores =
      FluctuationScores(*model, RandomTokens(4, 32, 256, 3));
  EXPECT_NEAR(scores.ffn[2][11].item<float>(), 0.0f, 1e-10);
  EXPECT_EQ(scores.heads[2][3].item<float>(), 0.0f);
  EXPECT_GT(scores.ffn[2].max().item<float>(), 0.0f);
  absl::StatusOr<SubnetUnits> units = TopUnits(config, scores, 0.5);
  ASSERT_TRUE(units.ok());
  EXPECT_EQ(std::count(units->layers[2].heads.begin(),
                       units->layers[2].heads.end(), 3),
            0);
}

}  // namespace
}  // namespace twist::common
