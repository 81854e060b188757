// Checkpoints (coordinator/checkpoint.h): written and read back whole, only
// the newest kept, a damaged newest one skipped with a description, and a
// folder that cannot be listed never taken for "no checkpoint".
#include "coordinator/checkpoint.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "tests/test_models.h"

namespace twist::coordinator {
namespace {

namespace fs = std::filesystem;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = twist::testing::MakeTempDir(); }
  void TearDown() override { fs::remove_all(dir_); }

  // A model and a state whose values depend on `round`.
  static common::NamedTensors Model(int round) {
    common::NamedTensors t;
    t.Set("wte.weight", torch::full({4, 3}, static_cast<float>(round)));
    t.Set("h.0.attn.c_attn.bias", torch::arange(6, torch::kFloat32) + round);
    return t;
  }
  static common::NamedTensors State(int round) {
    common::NamedTensors t;
    t.Set("velocity.wte.weight", torch::full({4, 3}, -0.5f * round));
    return t;
  }

  static void ExpectEqual(const common::NamedTensors& a,
                          const common::NamedTensors& b) {
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [name, t] : a) {
      const at::Tensor* u = b.Find(name);
      ASSERT_NE(u, nullptr) << name;
      EXPECT_TRUE(torch::equal(t, *u)) << name;
    }
  }

  std::string dir_;
};

TEST_F(CheckpointTest, WrittenThenLoadedAsTheLatest) {
  const std::string job = dir_ + "/jobs/1";  // created by the write
  ASSERT_TRUE(WriteCheckpoint(job, 4, Model(4), State(4)).ok());
  ASSERT_TRUE(WriteCheckpoint(job, 8, Model(8), State(8)).ok());
  std::vector<std::string> skipped;
  auto loaded = LoadLatestCheckpoint(job, &skipped);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_TRUE(loaded->has_value());
  const Checkpoint& c = **loaded;
  EXPECT_EQ(c.round, 8);
  EXPECT_EQ(c.path, job + "/checkpoint-000008.safetensors");
  ExpectEqual(c.model, Model(8));
  ExpectEqual(c.state, State(8));
  EXPECT_TRUE(skipped.empty());
}

TEST_F(CheckpointTest, WithoutStateLoadsAnEmptyState) {
  ASSERT_TRUE(WriteCheckpoint(dir_, 1, Model(1), {}).ok());
  auto loaded = LoadLatestCheckpoint(dir_, nullptr);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_TRUE(loaded->has_value());
  ExpectEqual((*loaded)->model, Model(1));
  EXPECT_TRUE((*loaded)->state.empty());
}

TEST_F(CheckpointTest, KeepsOnlyTheNewest) {
  for (int round = 1; round <= 5; ++round) {
    ASSERT_TRUE(WriteCheckpoint(dir_, round, Model(round), {}, /*keep=*/2).ok());
  }
  auto listed = ListCheckpoints(dir_);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].first, 5);  // newest first
  EXPECT_EQ((*listed)[1].first, 4);
  EXPECT_FALSE(fs::exists(dir_ + "/checkpoint-000003.safetensors"));

  // Rounds order numerically, not as text.
  ASSERT_TRUE(WriteCheckpoint(dir_, 1000000, Model(6), {}, /*keep=*/2).ok());
  listed = ListCheckpoints(dir_);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].first, 1000000);
  EXPECT_EQ((*listed)[1].first, 5);
}

TEST_F(CheckpointTest, DamagedNewestIsSkippedWithADescription) {
  ASSERT_TRUE(WriteCheckpoint(dir_, 2, Model(2), State(2)).ok());
  ASSERT_TRUE(WriteCheckpoint(dir_, 3, Model(3), State(3)).ok());
  const std::string newest = dir_ + "/checkpoint-000003.safetensors";
  {
    // One flipped bit in the tensor data: still a valid safetensors file.
    std::fstream f(newest, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-4, std::ios::end);
    char c = 0;
    f.get(c);
    f.seekp(-4, std::ios::end);
    f.put(static_cast<char>(c ^ 0x01));
  }
  std::vector<std::string> skipped;
  auto loaded = LoadLatestCheckpoint(dir_, &skipped);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ((*loaded)->round, 2);
  ExpectEqual((*loaded)->model, Model(2));
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_TRUE(absl::StrContains(skipped[0], "round 3")) << skipped[0];
  EXPECT_TRUE(absl::StrContains(skipped[0], "checksum mismatch")) << skipped[0];

  // A truncated file is skipped the same way.
  fs::resize_file(dir_ + "/checkpoint-000002.safetensors", 40);
  skipped.clear();
  loaded = LoadLatestCheckpoint(dir_, &skipped);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_FALSE(loaded->has_value());
  EXPECT_EQ(skipped.size(), 2u);
}

TEST_F(CheckpointTest, MissingFolderHasNoCheckpoints) {
  auto listed = ListCheckpoints(dir_ + "/no-such-job");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_TRUE(listed->empty());
  std::vector<std::string> skipped;
  auto loaded = LoadLatestCheckpoint(dir_ + "/no-such-job", &skipped);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_FALSE(loaded->has_value());
  EXPECT_TRUE(skipped.empty());
}

TEST_F(CheckpointTest, FileInPlaceOfTheFolderIsAnError) {
  const std::string path = dir_ + "/job";
  std::ofstream(path) << "not a folder";
  auto listed = ListCheckpoints(path);
  ASSERT_FALSE(listed.ok());
  EXPECT_TRUE(absl::StrContains(listed.status().message(), path))
      << listed.status();
  auto loaded = LoadLatestCheckpoint(path, nullptr);
  EXPECT_FALSE(loaded.ok());
  EXPECT_FALSE(WriteCheckpoint(path, 1, Model(1), {}).ok());
}

TEST_F(CheckpointTest, OtherFilesInTheFolderAreIgnored) {
  ASSERT_TRUE(WriteCheckpoint(dir_, 7, Model(7), {}).ok());
  std::ofstream(dir_ + "/model.safetensors") << "x";
  std::ofstream(dir_ + "/checkpoint-9.safetensors.tmp") << "x";
  auto listed = ListCheckpoints(dir_);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].first, 7);
}

}  // namespace
}  // namespace twist::coordinator
