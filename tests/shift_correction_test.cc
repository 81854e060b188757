#include "common/ist/shift_correction.h"

#include "common/model/model_io.h"
#include "common/ist/pruning.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::common {
namespace {

using ::twist::testing::MakeModel;
using ::twist::testing::RandomTokens;
using ::twist::testing::SmallConfig;

// Mean over batch and time of a sublayer's output: (B, T, C) -> (C).
torch::Tensor Mean(const torch::Tensor& y) {
  return y.mean(std::vector<int64_t>{0, 1});
}

double MaxDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

TEST(ShiftCorrectionTest, ContributionsAddUpToEachSublayersMeanOutput) {
  const ModelConfig config = SmallConfig();
  Gpt full = MakeModel(config, 1, torch::kFloat64);
  const auto idx = RandomTokens(4, 32, config.vocab_size, 2);
  const UnitContributions c = EstimateUnitContributions(*full, idx);
  ASSERT_EQ(c.heads.size(), 4u);
  EXPECT_EQ(c.heads[0].sizes().vec(), (std::vector<int64_t>{4, 64}));
  EXPECT_EQ(c.ffn[0].sizes().vec(), (std::vector<int64_t>{256, 64}));
  torch::NoGradGuard no_grad;
  auto& b0 = full->transformer->blocks[0];
  auto x = full->transformer->wte->forward(idx) +
           full->transformer->wpe->forward(torch::arange(32, torch::kLong));
  const auto attn = b0->attn->forward(b0->ln_1->forward(x), {}, 1.0);
  EXPECT_LT(MaxDiff(Mean(attn), c.heads[0].sum(0) + b0->attn->c_proj->bias),
            1e-12);
  x = x + attn;
  const auto mlp = b0->mlp->forward(b0->ln_2->forward(x), {}, 1.0);
  EXPECT_LT(MaxDiff(Mean(mlp), c.ffn[0].sum(0) + b0->mlp->c_proj->bias), 1e-12);
}

TEST(ShiftCorrectionTest, CorrectedSubnetworkKeepsTheFullModelsMeanOutput) {
  const ModelConfig config = SmallConfig();
  Gpt full = MakeModel(config, 3, torch::kFloat64);
  const auto idx = RandomTokens(4, 32, config.vocab_size, 4);
  const UnitContributions c = EstimateUnitContributions(*full, idx);
  SubnetUnits units = AllUnits(config);
  units.layers[0].heads = {2};
  units.layers[0].ffn_columns = {1, 5, 9, 200};
  auto sub = PruneModel(config, ParameterTensors(*full), units,
                        PartialSumScaling::kInverseKeepRatio, &c);
  ASSERT_TRUE(sub.ok()) << sub.status();
  // The correction replaces the scale.
  EXPECT_EQ((*sub)->partial_sum_scales().attn[0], 1.0);
  EXPECT_EQ((*sub)->partial_sum_scales().mlp[0], 1.0);
  torch::NoGradGuard no_grad;
  auto& fb = full->transformer->blocks[0];
  auto& sb = (*sub)->transformer->blocks[0];
  const auto x =
      full->transformer->wte->forward(idx) +
      full->transformer->wpe->forward(torch::arange(32, torch::kLong));
  // Same input, a quarter of the heads: the same mean output.
  const auto full_attn = fb->attn->forward(fb->ln_1->forward(x), {}, 1.0);
  const auto sub_attn = sb->attn->forward(sb->ln_1->forward(x), {}, 1.0);
  EXPECT_LT(MaxDiff(Mean(sub_attn), Mean(full_attn)), 1e-12);
  // Without the correction the mean is off.
  auto plain = PruneModel(config, ParameterTensors(*full), units,
                          PartialSumScaling::kNone);
  auto& pb = (*plain)->transformer->blocks[0];
  EXPECT_GT(MaxDiff(Mean(pb->attn->forward(pb->ln_1->forward(x), {}, 1.0)),
                    Mean(full_attn)),
            1e-6);
  // The FFN, fed the full model's stream, likewise.
  const auto x1 = x + full_attn;
  EXPECT_LT(MaxDiff(Mean(sb->mlp->forward(sb->ln_2->forward(x1), {}, 1.0)),
                    Mean(fb->mlp->forward(fb->ln_2->forward(x1), {}, 1.0))),
            1e-12);
}

TEST(ShiftCorrectionTest, TheWholeModelNeedsNoShiftAndShiftsComeOffAgain) {
  const ModelConfig config = SmallConfig();
  Gpt full = MakeModel(config, 5, torch::kFloat64);
  const UnitContributions c = EstimateUnitContributions(
      *full, RandomTokens(2, 16, config.vocab_size, 6));
  for (const auto& [name, shift] : BiasShifts(c, AllUnits(config))) {
    EXPECT_LT(shift.abs().max().item<double>(), 1e-12) << name;
  }
  SubnetUnits units = AllUnits(config);
  units.layers[3].heads.clear();
  const NamedTensors shifts = BiasShifts(c, units);
  EXPECT_LT(MaxDiff(*shifts.Find("transformer.h.3.attn.c_proj.bias"),
                    c.heads[3].sum(0)),
            1e-12);
  const NamedTensors params = ParameterTensors(*full);
  const at::Tensor before =
      params.Find("transformer.h.3.attn.c_proj.bias")->clone();
  ApplyBiasShifts(shifts, params);
  ApplyBiasShifts(shifts, params, -1.0);
  EXPECT_LT(MaxDiff(*params.Find("transformer.h.3.attn.c_proj.bias"), before),
            1e-15);
}

TEST(PruningTest, RandomSubnetKeepsTheRatioAndIsSeeded) {
  const ModelConfig config = SmallConfig();
  auto a = RandomSubnet(config, 0.5, 7), b = RandomSubnet(config, 0.5, 7),
       c = RandomSubnet(config, 0.5, 8);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_FALSE(*a == *c);
  for (const auto& layer : a->layers) {
    EXPECT_EQ(layer.heads.size(), 2u);
    EXPECT_EQ(layer.ffn_columns.size(), 128u);
  }
  auto quarter = RandomSubnet(config, 0.25, 1);
  EXPECT_EQ(quarter->layers[0].heads.size(), 1u);
  EXPECT_EQ(RandomSubnet(config, 0.0, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace twist::common
