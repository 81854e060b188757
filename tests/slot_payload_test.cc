// Tests of what travels for one slot (common/ist/slot_payload.h): the order
// and types of an assignment and an update, composing them from what the
// coordinator slices and what the worker's optimizer returns, splitting them
// again, and the coordinator-kept optimizer state's slice and merge
// (common/ist/optimizer_state.h) through them.
#include "common/ist/slot_payload.h"

#include <torch/torch.h>

#include "common/ist/optimizer_state.h"
#include "common/ist/partition.h"
#include "common/model/model_io.h"
#include "common/training/adamw.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::common {
namespace {

using ::twist::testing::MakeModel;

// One layer, 2 heads of 4, 8 FFN columns, V=16; the slot holds head 1 and
// columns 0 and 3.
struct Fixture {
  ModelConfig config = ModelConfig::Full(1, 2, 8, 8, 16);
  SubnetUnits units = [this] {
    SubnetUnits u = AllUnits(config);
    u.layers[0].heads = {1};
    u.layers[0].ffn_columns = {0, 3};
    return u;
  }();
};

TEST(SlotPayloadTest, WithoutOptimizerStateBothDirectionsAreTheParameters) {
  Fixture f;
  const SlotPayload payload(f.config, f.units, at::kBFloat16, false);
  const std::vector<ParameterShape> shapes =
      ParameterShapes(SubnetConfig(f.config, f.units));
  ASSERT_EQ(payload.assignment().size(), shapes.size());
  ASSERT_EQ(payload.update().size(), shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    EXPECT_EQ(payload.assignment()[i].name, shapes[i].name);
    EXPECT_EQ(payload.assignment()[i].shape, shapes[i].shape);
    EXPECT_EQ(payload.assignment()[i].dtype, at::kBFloat16);
    EXPECT_EQ(payload.assignment()[i].part, PayloadPart::kParameter);
    EXPECT_EQ(payload.update()[i].name, shapes[i].name);
  }
}

TEST(SlotPayloadTest, OptimizerStateFollowsTheParametersMomentsBothWays) {
  Fixture f;
  const SlotPayload payload(f.config, f.units, at::kFloat, true);
  const std::vector<ParameterShape> shapes =
      ParameterShapes(SubnetConfig(f.config, f.units));
  const size_t n = shapes.size();
  ASSERT_EQ(payload.assignment().size(), 4 * n);
  ASSERT_EQ(payload.update().size(), 3 * n);
  const std::vector<int64_t> dims = StepDims(f.config, f.units);
  for (size_t i = 0; i < n; ++i) {
    const PayloadTensor& m = payload.assignment()[n + 3 * i];
    const PayloadTensor& v = payload.assignment()[n + 3 * i + 1];
    const PayloadTensor& s = payload.assignment()[n + 3 * i + 2];
    EXPECT_EQ(m.name, ExpAvgName(shapes[i].name));
    EXPECT_EQ(m.part, PayloadPart::kFirstMoment);
    EXPECT_EQ(v.name, ExpAvgSqName(shapes[i].name));
    EXPECT_EQ(v.part, PayloadPart::kSecondMoment);
    EXPECT_EQ(m.shape, shapes[i].shape);
    EXPECT_EQ(s.name, StepsName(shapes[i].name));
    EXPECT_EQ(s.part, PayloadPart::kSteps);
    EXPECT_EQ(s.dtype, at::kFloat);
    EXPECT_EQ(s.shape, std::vector<int64_t>{dims[i] < 0 ? 1 : shapes[i].shape[dims[i]]});
    EXPECT_EQ(s.parameter, shapes[i].name);
    // The update carries the moments back, never the steps.
    EXPECT_EQ(payload.update()[n + 2 * i].name, m.name);
    EXPECT_EQ(payload.update()[n + 2 * i + 1].name, v.name);
  }
}

TEST(SlotPayloadTest, AssignmentComposedFromSlicesLoadsIntoTheWorkersOptimizer) {
  Fixture f;
  const NamedTensors full = ParameterTensors(*MakeModel(f.config, 3));
  FullOptimizerState state = FullOptimizerState::ZerosLike(f.config, full);
  for (const auto& [name, t] : state.exp_avg) t.uniform_(-1, 1);
  for (const auto& [name, t] : state.exp_avg_sq) t.uniform_(0, 1);
  AdvanceSteps(f.config, {&f.units}, 4, &state.steps);
  const NamedTensors params = twist::testing::Extract(f.config, full, f.units);
  auto sliced = state.Slice(f.config, {f.units}, at::kFloat);
  ASSERT_TRUE(sliced.ok()) << sliced.status();
  const SlotPayload payload(f.config, f.units, at::kFloat, true);
  auto assignment = payload.ComposeAssignment(params, (*sliced)[0]);
  ASSERT_TRUE(assignment.ok()) << assignment.status();
  ASSERT_EQ(assignment->size(), payload.assignment().size());
  for (size_t i = 0; i < assignment->size(); ++i) {
    EXPECT_EQ((*assignment)[i].name, payload.assignment()[i].name);
    EXPECT_EQ((*assignment)[i].tensor.sizes().vec(), payload.assignment()[i].shape);
  }
  // The worker's side: the split-off state is what its AdamW loads.
  const PayloadParts parts = SlotPayload::Split(*assignment);
  EXPECT_EQ(parts.parameters.size(), params.size());
  Gpt sub = MakeModel(SubnetConfig(f.config, f.units), 5);
  AdamW optimizer(ParameterTensors(*sub), StepDims(f.config, f.units),
                  AdamWOptions());
  ASSERT_TRUE(optimizer.LoadState(parts.optimizer_state).ok());
  const NamedTensors back = optimizer.State();
  const std::string first = ExpAvgName("transformer.h.0.mlp.c_fc.weight");
  EXPECT_TRUE(back.Find(first)->equal(*parts.optimizer_state.Find(first)));
  EXPECT_TRUE(back.Find(StepsName("transformer.h.0.mlp.c_fc.weight"))
                  ->reshape({-1})
                  .equal(torch::tensor({4.0f, 4.0f})));
  // The update from the optimizer's own State() leaves the steps behind.
  auto update = payload.ComposeUpdate(parts.parameters, back);
  ASSERT_TRUE(update.ok()) << update.status();
  ASSERT_EQ(update->size(), payload.update().size());
  for (const auto& [name, t] : *update) {
    EXPECT_NE(name.rfind(StepsName(""), 0), 0u) << name;
  }
}

TEST(SlotPayloadTest, ComposingNamesTheMissingTensor) {
  Fixture f;
  const NamedTensors params = twist::testing::Extract(
      f.config, ParameterTensors(*MakeModel(f.config, 1)), f.units);
  const SlotPayload payload(f.config, f.units, at::kFloat, true);
  auto assignment = payload.ComposeAssignment(params, NamedTensors());
  ASSERT_FALSE(assignment.ok());
  EXPECT_EQ(assignment.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(assignment.status().message().find(
                ExpAvgName(payload.assignment()[0].name)),
            std::string::npos)
      << assignment.status();
}

TEST(SlotPayloadTest, MergedStateAveragesHoldersAndAdvancesTheirSteps) {
  Fixture f;
  const NamedTensors full = ParameterTensors(*MakeModel(f.config, 3));
  FullOptimizerState state = FullOptimizerState::ZerosLike(f.config, full);
  // Two updates of the same units: moments 1 and 3 everywhere -> 2.
  const SlotPayload payload(f.config, f.units, at::kFloat, true);
  NamedTensors one, three;
  for (const PayloadTensor& t : payload.update()) {
    if (t.part == PayloadPart::kParameter) continue;
    one.Set(t.name, torch::full(t.shape, 1.0f));
    three.Set(t.name, torch::full(t.shape, 3.0f));
  }
  ASSERT_TRUE(state
                  .Merge(f.config,
                         {{&f.units, &one, false}, {&f.units, &three, false}},
                         /*local_steps=*/6)
                  .ok());
  const at::Tensor m = *state.exp_avg.Find("transformer.h.0.mlp.c_fc.weight");
  // (F, C): FFN column a is row a.
  EXPECT_EQ(m.select(0, 0).min().item<float>(), 2);  // column 0: held
  EXPECT_EQ(m.select(0, 1).abs().max().item<float>(), 0);  // column 1: not
  EXPECT_TRUE(state.steps.Find("transformer.h.0.mlp.c_fc.bias")
                  ->narrow(0, 0, 4)
                  .equal(torch::tensor({6.0f, 0.0f, 0.0f, 6.0f})));
  // An update without its moments is refused.
  NamedTensors empty;
  EXPECT_FALSE(state.Merge(f.config, {{&f.units, &empty, false}}, 1).ok());
}


// A compressed update: a code per parameter, then leftovers of the leaving
// units of the parameters sliced by units.
TEST(SlotPayloadTest, CompressedUpdateIsCodesThenLeavingUnitsLeftovers) {
  Fixture f;
  UpdateForm form;
  form.encoding = {UpdateCodec::kInt8};
  form.leaving.layers.resize(1);
  form.leaving.layers[0].ffn_columns = {3};
  const SlotPayload payload(f.config, f.units, at::kBFloat16, false, form);
  ASSERT_TRUE(payload.compressed());
  const std::vector<ParameterShape> shapes =
      ParameterShapes(SubnetConfig(f.config, f.units));
  ASSERT_EQ(payload.assignment().size(), shapes.size());
  std::vector<std::string> flushed;
  for (size_t i = 0; i < payload.update().size(); ++i) {
    const PayloadTensor& t = payload.update()[i];
    if (i < shapes.size()) {
      EXPECT_EQ(t.part, PayloadPart::kParameter);
      EXPECT_EQ(t.dtype, at::kByte);
      EXPECT_EQ(t.values_shape, shapes[i].shape);
      int64_t numel = 1;
      for (int64_t d : shapes[i].shape) numel *= d;
      EXPECT_EQ(t.shape, std::vector<int64_t>{EncodedBytes(form.encoding, numel)});
    } else {
      EXPECT_EQ(t.part, PayloadPart::kFlush);
      EXPECT_EQ(t.dtype, at::kBFloat16);
      flushed.push_back(t.parameter);
    }
  }
  // Only the FFN's column-sliced tensors: no head leaves.
  EXPECT_EQ(flushed, (std::vector<std::string>{
                         "transformer.h.0.mlp.c_fc.weight",
                         "transformer.h.0.mlp.c_fc.bias",
                         "transformer.h.0.mlp.c_proj.weight"}));
}

// Units dealt round by round by rolling windows (2 workers, half of each
// layer's units each), as the coordinator deals them.
std::vector<SubnetUnits> Rolling(const ModelConfig& config, int64_t round) {
  std::vector<SubnetUnits> out(2);
  for (auto& u : out) u.layers.resize(config.n_layer);
  for (int l = 0; l < config.n_layer; ++l) {
    auto heads = *RollingWindows(config.n_head[l], {config.n_head[l] / 2,
                                                    config.n_head[l] / 2},
                                 round);
    auto cols = *RollingWindows(config.ffn_width[l], {config.ffn_width[l] / 2,
                                                      config.ffn_width[l] / 2},
                                round);
    for (int w = 0; w < 2; ++w) {
      out[w].layers[l].heads = heads[w];
      out[w].layers[l].ffn_columns = cols[w];
    }
  }
  return out;
}

// Error feedback over rounds of a deal that moves units: every computed
// delta arrives, in the round it was computed or later, none is lost when
// its unit moves to the other worker, and after the last round (sent whole)
// the sum of what the coordinator decoded equals the sum of what the workers
// computed.
TEST(SlotPayloadTest, ErrorFeedbackAddsUpAcrossADealThatMovesUnits) {
  const ModelConfig config = ModelConfig::Full(2, 4, 16, 8, 16);
  const SubnetUnits all = AllUnits(config);
  for (UpdateCodec codec :
       {UpdateCodec::kInt8, UpdateCodec::kInt4, UpdateCodec::kTopK}) {
    NamedTensors computed, applied;  // full shapes
    for (const auto& p : ParameterShapes(config)) {
      computed.Set(p.name, torch::zeros(p.shape, torch::kDouble));
      applied.Set(p.name, torch::zeros(p.shape, torch::kDouble));
    }
    auto add_full = [&](NamedTensors& sum, const SubnetUnits& units,
                        const NamedTensors& part) {
      for (const auto& [name, t] : part) {
        *sum.Find(name) += CarryAlongUnits(config, units, all, name, t)
                               ->to(torch::kDouble);
      }
    };
    std::vector<SubnetUnits> kept_units(2);
    std::vector<NamedTensors> residual(2);
    constexpr int kRounds = 7;
    torch::manual_seed(5);
    for (int round = 1; round <= kRounds; ++round) {
      const std::vector<SubnetUnits> now = Rolling(config, round);
      const std::vector<SubnetUnits> next = Rolling(config, round + 1);
      for (int w = 0; w < 2; ++w) {
        UpdateForm form;
        form.encoding = {round < kRounds ? codec : UpdateCodec::kNone, 0.05};
        form.leaving = UnitsNotIn(now[w], next[w]);
        NamedTensors delta, values;
        for (const auto& p : ParameterShapes(SubnetConfig(config, now[w]))) {
          delta.Set(p.name, torch::randn(p.shape) * 1e-2);
          at::Tensor x = delta.Find(p.name)->clone();
          if (!residual[w].empty()) {
            x += *CarryAlongUnits(config, kept_units[w], now[w], p.name,
                                  *residual[w].Find(p.name));
          }
          values.Set(p.name, x);
        }
        add_full(computed, now[w], delta);
        const SlotPayload payload(config, now[w], at::kFloat, false, form);
        if (!payload.compressed()) {  // the last round: everything, whole
          add_full(applied, now[w], values);
          residual[w] = NamedTensors();
          continue;
        }
        auto encoded = payload.EncodeUpdate(values);
        ASSERT_TRUE(encoded.ok()) << encoded.status();
        auto decoded = payload.DecodeUpdate(encoded->tensors);
        ASSERT_TRUE(decoded.ok()) << decoded.status();
        add_full(applied, now[w], *decoded);
        residual[w] = encoded->left_behind;
        kept_units[w] = now[w];
      }
    }
    for (const auto& [name, t] : computed) {
      EXPECT_TRUE(torch::allclose(*applied.Find(name), t, 1e-5, 1e-6))
          << UpdateCodecName(codec) << " " << name << ": max |diff| "
          << (*applied.Find(name) - t).abs().max().item<double>();
    }
  }
}

}  // namespace
}  // namespace twist::common
