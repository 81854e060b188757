#include "common/outer_optimizer.h"

#include "common/model_io.h"
#include "common/subnet.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::common {
namespace {

using ::twist::testing::MakeModel;

// A model small enough to reason about: 1 layer, C=4, 2 heads, F=16.
ModelConfig Tiny() { return ModelConfig::Full(1, 2, 4, 4, 8); }

NamedTensors Clone(const NamedTensors& t) {
  NamedTensors out;
  for (const auto& [name, tensor] : t) out.Set(name, tensor.detach().clone());
  return out;
}

// One round where a worker holding `units` moved every held weight by `shift`.
MergedDelta Round(const ModelConfig& config, const NamedTensors& params,
                  const SubnetUnits& units, double shift) {
  auto sliced = ExtractSubnet(config, params, units);
  EXPECT_TRUE(sliced.ok());
  NamedTensors trained;
  for (const auto& [name, t] : *sliced) trained.Set(name, t + shift);
  SubnetMerger merger(config, params);
  EXPECT_TRUE(merger.AddWeights(units, trained).ok());
  return merger.Finish();
}

TEST(OuterOptimizerTest,
     LearningRateOneWithoutMomentumIsPlainMergingBitForBit) {
  const ModelConfig config = Tiny();
  Gpt model = MakeModel(config, 1);
  const NamedTensors params = ParameterTensors(*model);
  const NamedTensors plain = Clone(params);
  SubnetUnits units = AllUnits(config);
  units.layers[0].heads = {1};
  units.layers[0].ffn_columns = {0, 3, 9};
  const MergedDelta merged = Round(config, params, units, 0.37);
  ApplyMergedDelta(merged, plain);
  OuterOptimizer outer(
      {/*learning_rate=*/1.0, /*momentum=*/0.0, /*nesterov=*/true});
  outer.Step(merged, params);
  for (const auto& [name, t] : params) {
    EXPECT_TRUE(t.equal(*plain.Find(name))) << name;
  }
  EXPECT_TRUE(outer.state().empty());  // nothing to keep without momentum
}

TEST(OuterOptimizerTest, NesterovMomentumMatchesHandComputedSteps) {
  // One replicated tensor moved by +0.5 twice: g = -0.5 each round.
  //   round 1: v = 0.9*0 - 0.5 = -0.5;  step = g + 0.9 v = -0.95;  theta +=
  //   0.7*0.95 round 2: v = 0.9*(-0.5) - 0.5 = -0.95; step = -0.5 - 0.855 =
  //   -1.355;
  //            theta += 0.7*1.355
  const ModelConfig config = Tiny();
  Gpt model = MakeModel(config, 2);
  const NamedTensors params = ParameterTensors(*model);
  const std::string name = "transformer.ln_f.bias";
  const at::Tensor before = params.Find(name)->clone();
  OuterOptimizer outer({0.7, 0.9, /*nesterov=*/true});
  const SubnetUnits all = AllUnits(config);
  outer.Step(Round(config, params, all, 0.5), params);
  EXPECT_TRUE(
      torch::allclose(*params.Find(name), before + 0.7 * 0.95, 0, 1e-6));
  outer.Step(Round(config, params, all, 0.5), params);
  EXPECT_TRUE(torch::allclose(*params.Find(name), before + 0.7 * (0.95 + 1.355),
                              0, 1e-6));
  EXPECT_TRUE(torch::allclose(*outer.state().Find(name),
                              torch::full_like(before, -0.95), 0, 1e-6));

  // Heavy ball: step = v.
  Gpt other = MakeModel(config, 2);
  const NamedTensors p2 = ParameterTensors(*other);
  OuterOptimizer heavy({0.7, 0.9, /*nesterov=*/false});
  heavy.Step(Round(config, p2, all, 0.5), p2);
  heavy.Step(Round(config, p2, all, 0.5), p2);
  EXPECT_TRUE(
      torch::allclose(*p2.Find(name), before + 0.7 * (0.5 + 0.95), 0, 1e-6));
}

TEST(OuterOptimizerTest, UnitsWithoutContributorsKeepValueAndVelocity) {
  const ModelConfig config = Tiny();
  Gpt model = MakeModel(config, 3);
  const NamedTensors params = ParameterTensors(*model);
  OuterOptimizer outer({1.0, 0.9, true});
  const SubnetUnits all = AllUnits(config);
  outer.Step(Round(config, params, all, 0.1), params);  // velocity everywhere
  const NamedTensors before = Clone(params);
  const NamedTensors velocity = Clone(outer.state());
  SubnetUnits head0 = AllUnits(config);
  head0.layers[0].heads = {0};
  head0.layers[0].ffn_columns = {2};
  outer.Step(Round(config, params, head0, 0.1), params);
  const std::string fc = "transformer.h.0.mlp.c_fc.weight";
  // Column 2 moved; column 5 (nobody held it) did not, nor did its velocity.
  EXPECT_FALSE(
      params.Find(fc)->select(0, 2).equal(before.Find(fc)->select(0, 2)));
  EXPECT_TRUE(
      params.Find(fc)->select(0, 5).equal(before.Find(fc)->select(0, 5)));
  EXPECT_TRUE(outer.state().Find(fc)->select(0, 5).equal(
      velocity.Find(fc)->select(0, 5)));
  const std::string proj =
      "transformer.h.0.attn.c_proj.weight";  // columns per head
  EXPECT_TRUE(params.Find(proj)->slice(1, 2, 4).equal(
      before.Find(proj)->slice(1, 2, 4)));
  EXPECT_FALSE(params.Find(proj)->slice(1, 0, 2).equal(
      before.Find(proj)->slice(1, 0, 2)));
}

TEST(OuterOptimizerTest, StateRoundTripsAndIsChecked) {
  const ModelConfig config = Tiny();
  Gpt model = MakeModel(config, 4);
  const NamedTensors params = ParameterTensors(*model);
  OuterOptimizer outer({1.0, 0.5, true});
  outer.Step(Round(config, params, AllUnits(config), 0.2), params);
  OuterOptimizer restored({1.0, 0.5, true});
  ASSERT_TRUE(restored.LoadState(outer.state(), params).ok());
  for (const auto& [name, v] : outer.state()) {
    EXPECT_TRUE(restored.state().Find(name)->equal(v)) << name;
  }
  NamedTensors wrong;
  wrong.Set("transformer.ln_f.bias", torch::zeros({3}));
  EXPECT_EQ(restored.LoadState(wrong, params).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace twist::common
