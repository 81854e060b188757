// Tests of the project's AdamW (common/training/adamw.h): step for step
// against torch::optim::AdamW where both apply, per-position step counts
// against the formula, state round trips; and carrying worker-resident state
// from one subnetwork to the next (common/ist/optimizer_state.h).
#include "common/training/adamw.h"

#include <torch/torch.h>

#include <cmath>

#include "common/ist/optimizer_state.h"
#include "common/model/model_io.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::common {
namespace {

using ::twist::testing::Clone;
using ::twist::testing::MakeModel;

// A loss that touches every parameter, from a fixed random batch.
void Backward(GptImpl& model, uint64_t seed) {
  model.zero_grad(true);
  const auto idx = twist::testing::RandomTokens(2, 8, model.config().vocab_size,
                                                seed);
  model.Loss(idx, idx.roll(1, 1)).backward();
}

TEST(AdamWTest, EqualsTorchAdamWStepForStep) {
  const ModelConfig config = ModelConfig::Full(2, 2, 16, 8, 32);
  Gpt mine = MakeModel(config, 1);
  Gpt theirs = MakeModel(config, 1);
  const NamedTensors params = ParameterTensors(*mine);
  AdamW adamw(params, std::vector<int64_t>(params.size(), -1),
              AdamWOptions{0.9, 0.95, 1e-8, 0.1});
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : theirs->parameters()) {
    (p.dim() >= 2 ? decay : no_decay).push_back(p);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(1e-3)
                                     .betas({0.9, 0.95})
                                     .eps(1e-8)
                                     .weight_decay(0.1)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(1e-3)
                                        .betas({0.9, 0.95})
                                        .eps(1e-8)
                                        .weight_decay(0.0)));
  torch::optim::AdamW torch_adamw(groups);
  for (int step = 0; step < 6; ++step) {
    const double lr = 1e-3 * (step + 1);
    Backward(*mine, step);
    Backward(*theirs, step);
    adamw.Step(lr);
    for (auto& g : torch_adamw.param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    }
    torch_adamw.step();
  }
  const NamedTensors want = ParameterTensors(*theirs);
  for (const auto& [name, t] : params) {
    EXPECT_TRUE(t.equal(*want.Find(name))) << name;
  }
  const NamedTensors state = adamw.State();
  EXPECT_EQ(state.Find(StepsName("transformer.wte.weight"))->item<float>(), 6);
}

TEST(AdamWTest, TensorsLargerThanABatchEqualTorchAdamW) {
  // Two tensors past the update's batch of 4M elements, cut into pieces.
  torch::manual_seed(3);
  const torch::Tensor start = torch::randn({1100, 4000});  // [1100, 4000]
  const torch::Tensor bias_start = torch::randn({4100000});
  torch::Tensor mine = start.clone().requires_grad_();
  torch::Tensor mine_bias = bias_start.clone().requires_grad_();
  torch::Tensor theirs = start.clone().requires_grad_();
  torch::Tensor theirs_bias = bias_start.clone().requires_grad_();
  NamedTensors params;
  params.Set("w", mine);
  params.Set("b", mine_bias);
  AdamW adamw(params, {-1, -1}, AdamWOptions{0.9, 0.95, 1e-8, 0.0});
  torch::optim::AdamW torch_adamw(
      {theirs, theirs_bias},
      torch::optim::AdamWOptions(1e-3).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.0));
  for (int step = 0; step < 3; ++step) {
    const torch::Tensor g = torch::randn({1100, 4000});
    const torch::Tensor gb = torch::randn({4100000});
    mine.mutable_grad() = g.clone();
    mine_bias.mutable_grad() = gb.clone();
    theirs.mutable_grad() = g.clone();
    theirs_bias.mutable_grad() = gb.clone();
    adamw.Step(1e-3);
    torch_adamw.step();
  }
  EXPECT_TRUE(mine.equal(theirs));
  EXPECT_TRUE(mine_bias.equal(theirs_bias));
  EXPECT_FALSE(mine.equal(start));
}

TEST(AdamWTest, PerPositionStepsCorrectEachPositionsBias) {
  // One parameter of 2 rows; row 0 has taken 3 steps before, row 1 none.
  at::Tensor p = torch::zeros({2, 3}, torch::requires_grad());
  NamedTensors params;
  params.Set("w", p);
  AdamW adamw(params, {0}, AdamWOptions{0.9, 0.99, 1e-8, 0.0});
  NamedTensors state;
  state.Set(ExpAvgName("w"), torch::full({2, 3}, 0.5));
  state.Set(ExpAvgSqName("w"), torch::full({2, 3}, 0.25));
  state.Set(StepsName("w"), torch::tensor({3.0f, 0.0f}));
  ASSERT_TRUE(adamw.LoadState(state).ok());
  p.mutable_grad() = torch::ones({2, 3});
  adamw.Step(0.1);
  // Row 0 at t = 4 with its moments, row 1 at t = 1: the formula by hand.
  auto expected = [](double m0, double v0, double t) {
    const double m = 0.9 * m0 + 0.1, v = 0.99 * v0 + 0.01;
    const double mhat = m / (1 - std::pow(0.9, t));
    const double denom = std::sqrt(v) / std::sqrt(1 - std::pow(0.99, t)) + 1e-8;
    return -0.1 * mhat / denom;
  };
  EXPECT_NEAR(p[0][0].item<double>(), expected(0.5, 0.25, 4), 1e-6);
  EXPECT_NEAR(p[1][2].item<double>(), expected(0.5, 0.25, 1), 1e-6);
  EXPECT_TRUE(adamw.State().Find(StepsName("w"))->equal(
      torch::tensor({4.0f, 1.0f})));
}

TEST(AdamWTest, LoadStateRefusesMissingMisshapenAndNegativeState) {
  at::Tensor p = torch::zeros({2, 3}, torch::requires_grad());
  NamedTensors params;
  params.Set("w", p);
  AdamW adamw(params, {0}, AdamWOptions{});
  NamedTensors good;
  good.Set(ExpAvgName("w"), torch::zeros({2, 3}));
  good.Set(ExpAvgSqName("w"), torch::zeros({2, 3}));
  good.Set(StepsName("w"), torch::zeros({2}));
  EXPECT_TRUE(adamw.LoadState(good).ok());
  NamedTensors bad = Clone(good);
  bad.Set(StepsName("w"), torch::zeros({3}));
  EXPECT_EQ(adamw.LoadState(bad).code(), absl::StatusCode::kInvalidArgument);
  bad = Clone(good);
  bad.Set(ExpAvgSqName("w"), -torch::ones({2, 3}));
  EXPECT_EQ(adamw.LoadState(bad).code(), absl::StatusCode::kInvalidArgument);
  NamedTensors missing;
  missing.Set(ExpAvgName("w"), torch::zeros({2, 3}));
  EXPECT_EQ(adamw.LoadState(missing).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(OptimizerStateTest, CarriedStateKeepsHeldUnitsAndZeroesNewOnes) {
  const ModelConfig config = ModelConfig::Full(1, 4, 16, 8, 32);  // D = 4
  SubnetUnits before = AllUnits(config), after = AllUnits(config);
  before.layers[0].heads = {0, 2};
  after.layers[0].heads = {2, 3};
  before.layers[0].ffn_columns = {1, 5, 9};
  after.layers[0].ffn_columns = {5, 6};
  // State of `before` whose values say where they came from: the full
  // position along the step dimension, plus one.
  NamedTensors state;
  for (const auto& p : ParameterShapes(SubnetConfig(config, before))) {
    std::optional<SliceRule> rule = *SliceRuleFor(config, before, p.name);
    at::Tensor m = torch::zeros(p.shape);
    at::Tensor steps = torch::full({1}, 7.0f);
    if (rule) {
      std::vector<int64_t> shape(p.shape.size(), 1);
      shape[rule->dim] = -1;
      m = (torch::tensor(rule->index, torch::kFloat) + 1).view(shape).expand(p.shape).contiguous();
      steps = torch::tensor(rule->index, torch::kFloat) + 1;
    } else {
      m.fill_(-1);
    }
    state.Set(ExpAvgName(p.name), m);
    state.Set(ExpAvgSqName(p.name), m.abs());
    state.Set(StepsName(p.name), steps);
  }
  auto carried = CarryState(config, before, after, state);
  ASSERT_TRUE(carried.ok()) << carried.status();
  // Head 2 (rows 8..11 of each q/k/v block) was held: kept. Head 3 is new.
  const at::Tensor m = *carried->Find(ExpAvgName("transformer.h.0.attn.c_attn.weight"));
  ASSERT_EQ(m.size(0), 3 * 2 * 4);
  EXPECT_EQ(m[0][0].item<float>(), 9);  // q rows of head 2: position 8 + 1
  EXPECT_EQ(m[4][0].item<float>(), 0);  // q rows of head 3: new
  const at::Tensor steps = *carried->Find(StepsName("transformer.h.0.mlp.c_fc.weight"));
  EXPECT_TRUE(steps.equal(torch::tensor({6.0f, 0.0f})));  // column 5 kept, 6 new
  // Replicated parameters keep everything.
  EXPECT_EQ(carried->Find(StepsName("transformer.wte.weight"))->item<float>(), 7);
  EXPECT_EQ(carried->Find(ExpAvgName("transformer.ln_f.bias"))->min().item<float>(), -1);
}

TEST(OptimizerStateTest, CarryStateMovesWhatStaysInPlaceAndCopiesNothingElse) {
  // The same units again (every round of local_sgd): nothing is copied, so
  // the old and the carried state are never both in memory.
  const ModelConfig config = ModelConfig::Full(1, 2, 8, 8, 16);
  const SubnetUnits units = AllUnits(config);
  NamedTensors state;
  for (const auto& p : ParameterShapes(SubnetConfig(config, units))) {
    state.Set(ExpAvgName(p.name), torch::rand(p.shape));
    state.Set(ExpAvgSqName(p.name), torch::rand(p.shape));
    state.Set(StepsName(p.name), torch::ones({1}));
  }
  std::vector<const void*> storage;
  for (const auto& [name, t] : state) storage.push_back(t.data_ptr());
  auto carried = CarryState(config, units, units, state);
  ASSERT_TRUE(carried.ok()) << carried.status();
  ASSERT_EQ(carried->size(), state.size());
  for (size_t i = 0; i < state.size(); ++i) {
    const at::Tensor* t = carried->Find(state[i].name);
    ASSERT_NE(t, nullptr) << state[i].name;
    EXPECT_EQ(t->data_ptr(), storage[i]) << state[i].name;
  }
}

TEST(OptimizerStateTest, AdvanceStepsCountsOnlyWhatWasTrained) {
  const ModelConfig config = ModelConfig::Full(1, 2, 8, 8, 16);
  FullOptimizerState state =
      FullOptimizerState::ZerosLike(config, ParameterTensors(*MakeModel(config, 1)));
  SubnetUnits a = AllUnits(config);
  a.layers[0].heads = {1};
  a.layers[0].ffn_columns = {0, 3};
  AdvanceSteps(config, {&a}, 5, &state.steps);
  EXPECT_TRUE(state.steps.Find("transformer.h.0.mlp.c_fc.bias")
                  ->narrow(0, 0, 4)
                  .equal(torch::tensor({5.0f, 0.0f, 0.0f, 5.0f})));
  EXPECT_EQ(state.steps.Find("transformer.wte.weight")->item<float>(), 5);
  const at::Tensor heads = *state.steps.Find("transformer.h.0.attn.c_proj.weight");
  EXPECT_EQ(heads[0].item<float>(), 0);  // head 0's columns
  EXPECT_EQ(heads[4].item<float>(), 5);  // head 1's columns
}

}  // namespace
}  // namespace twist::common
