// Tests of the coordinator's model state (coordinator/model_state.h): its
// checkpoint form round trips the parameters, the outer velocity and the
// coordinator-kept optimizer state exactly, and a checkpoint that does not
// fit is refused without touching the model.
#include "coordinator/model_state.h"

#include "common/ist/merge.h"

#include <torch/torch.h>

#include <filesystem>

#include "common/ist/subnet.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::coordinator {
namespace {

bool Equal(const common::NamedTensors& a, const common::NamedTensors& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || !a[i].tensor.equal(b[i].tensor)) return false;
  }
  return true;
}

// A state whose velocity and optimizer state are not zero.
ModelState Trained(const common::ModelConfig& config) {
  ModelState state(config, /*seed=*/7, /*keeps_optimizer_state=*/true);
  torch::manual_seed(1);
  for (const auto& [name, p] : state.parameters()) {
    // In the merge's velocity type, as a job's merges leave it.
    state.velocity()->Set(name, torch::randn_like(p).to(common::kVelocityType));
  }
  for (const auto& [name, t] : state.optimizer_state()->exp_avg) t.normal_();
  for (const auto& [name, t] : state.optimizer_state()->exp_avg_sq) t.uniform_();
  const common::SubnetUnits all = common::AllUnits(config);
  common::AdvanceSteps(config, {&all}, 3, &state.optimizer_state()->steps);
  return state;
}

TEST(ModelStateTest, CheckpointRestoresParametersVelocityAndOptimizerState) {
  const common::ModelConfig config = common::ModelConfig::Full(2, 2, 8, 16, 32);
  ModelState saved = Trained(config);
  const std::string dir = twist::testing::MakeTempDir();
  ASSERT_TRUE(saved.WriteCheckpoint(dir, /*round=*/4, /*keep=*/2).ok());
  std::vector<std::string> skipped;
  auto loaded = LoadLatestCheckpoint(dir, &skipped);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ((*loaded)->round, 4);

  ModelState restored(config, /*seed=*/99, /*keeps_optimizer_state=*/true);
  ASSERT_FALSE(Equal(restored.parameters(), saved.parameters()));
  ASSERT_TRUE(restored.Restore(**loaded).ok());
  EXPECT_TRUE(Equal(restored.parameters(), saved.parameters()));
  EXPECT_TRUE(Equal(*restored.velocity(), *saved.velocity()));
  EXPECT_TRUE(Equal(restored.optimizer_state()->Named(),
                    saved.optimizer_state()->Named()));
  std::filesystem::remove_all(dir);
}

TEST(ModelStateTest, FloatVelocityOfAnOlderCheckpointIsRestoredRounded) {
  const common::ModelConfig config = common::ModelConfig::Full(1, 2, 8, 16, 32);
  ModelState saved = Trained(config);
  common::NamedTensors float_velocity;
  for (const auto& [name, p] : saved.parameters()) {
    float_velocity.Set(name, torch::randn_like(p));
  }
  *saved.velocity() = float_velocity;
  const std::string dir = twist::testing::MakeTempDir();
  ASSERT_TRUE(saved.WriteCheckpoint(dir, /*round=*/2, /*keep=*/1).ok());
  std::vector<std::string> skipped;
  auto loaded = LoadLatestCheckpoint(dir, &skipped);
  ASSERT_TRUE(loaded.ok() && loaded->has_value()) << loaded.status();
  ModelState restored(config, /*seed=*/99, /*keeps_optimizer_state=*/true);
  ASSERT_TRUE(restored.Restore(**loaded).ok());
  ASSERT_EQ(restored.velocity()->size(), float_velocity.size());
  for (const auto& [name, v] : float_velocity) {
    const at::Tensor& r = *restored.velocity()->Find(name);
    EXPECT_EQ(r.scalar_type(), common::kVelocityType) << name;
    EXPECT_TRUE(r.equal(v.to(common::kVelocityType))) << name;
  }
  std::filesystem::remove_all(dir);
}

TEST(ModelStateTest, CheckpointStateSharesTheVelocityAndTheOptimizerState) {
  const common::ModelConfig config = common::ModelConfig::Full(1, 2, 8, 16, 32);
  ModelState state = Trained(config);
  const common::NamedTensors named = state.CheckpointState();
  // Velocity by parameter name, then the optimizer state.
  EXPECT_EQ(named.size(), 4 * state.parameters().size());
  state.velocity()->Find(named[0].name)->fill_(5);
  EXPECT_EQ(named[0].tensor.min().item<float>(), 5);  // shared, not copied
}

TEST(ModelStateTest, CheckpointOfAnotherModelIsRefusedAndChangesNothing) {
  const common::ModelConfig small = common::ModelConfig::Full(1, 2, 8, 16, 32);
  const common::ModelConfig wide = common::ModelConfig::Full(1, 2, 16, 16, 32);
  const std::string dir = twist::testing::MakeTempDir();
  ASSERT_TRUE(Trained(wide).WriteCheckpoint(dir, 1, 1).ok());
  std::vector<std::string> skipped;
  auto loaded = LoadLatestCheckpoint(dir, &skipped);
  ASSERT_TRUE(loaded.ok() && loaded->has_value());
  ModelState state(small, 7, true);
  const common::NamedTensors before = state.CloneParameters();
  const common::NamedTensors moments =
      twist::testing::Clone(state.optimizer_state()->Named());
  absl::Status s = state.Restore(**loaded);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(Equal(state.parameters(), before));
  EXPECT_TRUE(state.velocity()->empty());
  EXPECT_TRUE(Equal(state.optimizer_state()->Named(), moments));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace twist::coordinator
