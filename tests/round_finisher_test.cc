// The round finisher (coordinator/round_finisher.h): evaluation, checkpoints
// and records on a thread of its own, in round order, reading the model
// itself until AwaitModelRead() says it is done with it.
#include "coordinator/round_finisher.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "common/data/dataset.h"
#include "common/training/evaluation.h"
#include "coordinator/checkpoint.h"
#include "tests/support/in_process_cluster.h"
#include "tests/test_models.h"

namespace twist::coordinator {
namespace {

namespace fs = std::filesystem;

class RoundFinisherTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(twist::testing::MakeTempDir());
    auto data = twist::testing::PrepareSyntheticDatasetInProcess(*dir_, 20000);
    ASSERT_TRUE(data.ok()) << data.status();
    auto dataset = common::Dataset::Open(*data);
    ASSERT_TRUE(dataset.ok()) << dataset.status();
    dataset_ = new common::Dataset(*std::move(dataset));
  }
  static void TearDownTestSuite() {
    delete dataset_;
    fs::remove_all(*dir_);
    delete dir_;
  }

  void SetUp() override {
    job_dir_ = *dir_ + "/" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name();
    config_ = common::ModelConfig::Full(/*n_layer=*/1, /*n_head=*/2,
                                        /*n_embd=*/32, /*block_size=*/32,
                                        /*vocab_size=*/256);
    model_ = twist::testing::MakeModel(config_, /*seed=*/3);
    params_ = common::ParameterTensors(*model_);
  }

  RoundFinisher::Options FinisherOptions() const {
    RoundFinisher::Options options;
    options.eval_batches = 2;
    options.batch_size = 4;
    options.job_dir = job_dir_;
    options.checkpoints_kept = 2;
    return options;
  }

  // Reads the fixture's model (and a state of one tensor), as the job
  // runner reads its own; each read first sleeps `delay`.
  RoundFinisher::ModelReader Reader(absl::Duration delay = absl::ZeroDuration()) {
    return [this, delay](const RoundFinisher::ModelUse& use) {
      absl::SleepFor(delay);
      common::NamedTensors state;
      state.Set("velocity.wte.weight", torch::ones({2, 2}));
      return use(*model_, params_, state);
    };
  }

  static twist::v1::RoundRecord Record(int round) {
    twist::v1::RoundRecord r;
    r.set_round(round);
    r.set_duration_s(0.25);
    return r;
  }

  static std::string* dir_;
  static common::Dataset* dataset_;
  std::string job_dir_;
  common::ModelConfig config_;
  common::Gpt model_{nullptr};
  common::NamedTensors params_;
};

std::string* RoundFinisherTest::dir_ = nullptr;
common::Dataset* RoundFinisherTest::dataset_ = nullptr;

TEST_F(RoundFinisherTest, EvaluationRecordsTheValidationLoss) {
  absl::Mutex mu;
  std::vector<twist::v1::RoundRecord> records;
  RoundFinisher::Hooks hooks;
  hooks.round_finished = [&](const twist::v1::RoundRecord& r) {
    absl::MutexLock lock(&mu);
    records.push_back(r);
  };
  hooks.checkpoint_written = [](int32_t) { ADD_FAILURE() << "no checkpoint"; };
  RoundFinisher finisher(dataset_->val(), FinisherOptions(), hooks, Reader());
  ASSERT_TRUE(finisher.Submit(Record(1), /*evaluate=*/true,
                              /*checkpoint=*/false)
                  .ok());
  ASSERT_TRUE(finisher.Submit(Record(2), /*evaluate=*/false,
                              /*checkpoint=*/false)
                  .ok());
  ASSERT_TRUE(finisher.Drain().ok());

  auto expected = common::EvaluateLoss(*model_, dataset_->val(), 2, 4, 32);
  ASSERT_TRUE(expected.ok()) << expected.status();
  absl::MutexLock lock(&mu);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].round(), 1);
  EXPECT_TRUE(records[0].has_val_loss());
  EXPECT_DOUBLE_EQ(records[0].val_loss(), *expected);
  EXPECT_GT(records[0].eval_s(), 0);
  EXPECT_GT(records[0].finished_at(), 0);
  EXPECT_DOUBLE_EQ(records[0].duration_s(), 0.25);  // kept as submitted
  EXPECT_EQ(records[1].round(), 2);
  EXPECT_FALSE(records[1].has_val_loss());
  EXPECT_FALSE(fs::exists(job_dir_));  // nothing written
}

TEST_F(RoundFinisherTest, EvaluateNowMatchesTheModelsLoss) {
  RoundFinisher::Hooks hooks;
  hooks.round_finished = [](const twist::v1::RoundRecord&) {};
  hooks.checkpoint_written = [](int32_t) {};
  RoundFinisher finisher(dataset_->val(), FinisherOptions(), hooks, Reader());
  auto loss = finisher.EvaluateNow();
  ASSERT_TRUE(loss.ok()) << loss.status();
  auto expected = common::EvaluateLoss(*model_, dataset_->val(), 2, 4, 32);
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_DOUBLE_EQ(*loss, *expected);
  // A fresh byte-level model is close to uniform over 256 ids.
  EXPECT_NEAR(*loss, std::log(256.0), 0.5);
}

TEST_F(RoundFinisherTest, CheckpointIsWrittenWhenAsked) {
  std::vector<int32_t> written;
  std::vector<int32_t> finished;
  RoundFinisher::Hooks hooks;
  hooks.round_finished = [&](const twist::v1::RoundRecord& r) {
    finished.push_back(r.round());
  };
  hooks.checkpoint_written = [&](int32_t round) {
    // After the round's record, with the file on disk.
    EXPECT_FALSE(finished.empty());
    EXPECT_EQ(finished.back(), round);
    auto listed = ListCheckpoints(job_dir_);
    EXPECT_TRUE(listed.ok() && !listed->empty() &&
                (*listed)[0].first == round);
    written.push_back(round);
  };
  {
    RoundFinisher finisher(dataset_->val(), FinisherOptions(), hooks, Reader());
    ASSERT_TRUE(
        finisher.Submit(Record(1), false, /*checkpoint=*/false)
            .ok());
    ASSERT_TRUE(
        finisher.Submit(Record(2), false, /*checkpoint=*/true)
            .ok());
    // The model moves on once the finisher has read it; the checkpoint of
    // round 2 holds it as it was.
    const common::NamedTensors at_round_2 = twist::testing::Clone(params_);
    finisher.AwaitModelRead();
    {
      torch::NoGradGuard no_grad;
      for (auto& [name, t] : params_) t.add_(1.0);
    }
    ASSERT_TRUE(finisher.Drain().ok());
    EXPECT_EQ(written, (std::vector<int32_t>{2}));
    std::vector<std::string> skipped;
    auto loaded = LoadLatestCheckpoint(job_dir_, &skipped);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ASSERT_TRUE(loaded->has_value());
    EXPECT_EQ((*loaded)->round, 2);
    for (const auto& [name, t] : at_round_2) {
      const at::Tensor* saved = (*loaded)->model.Find(name);
      ASSERT_NE(saved, nullptr) << name;
      EXPECT_TRUE(torch::equal(*saved, t)) << name;
    }
    ASSERT_NE((*loaded)->state.Find("velocity.wte.weight"), nullptr);

    // Only the newest checkpoints_kept stay.
    for (int round = 3; round <= 5; ++round) {
      ASSERT_TRUE(finisher.Submit(Record(round), false, true).ok());
    }
    ASSERT_TRUE(finisher.Drain().ok());
  }
  EXPECT_EQ(written, (std::vector<int32_t>{2, 3, 4, 5}));
  EXPECT_EQ(finished, (std::vector<int32_t>{1, 2, 3, 4, 5}));
  auto listed = ListCheckpoints(job_dir_);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].first, 5);
  EXPECT_EQ((*listed)[1].first, 4);
}

TEST_F(RoundFinisherTest, DrainWaitsForTheSubmittedRounds) {
  std::atomic<int> finished{0};
  RoundFinisher::Hooks hooks;
  hooks.round_finished = [&](const twist::v1::RoundRecord&) {
    absl::SleepFor(absl::Milliseconds(300));
    finished.fetch_add(1);
  };
  hooks.checkpoint_written = [](int32_t) {};
  RoundFinisher finisher(dataset_->val(), FinisherOptions(), hooks, Reader());
  const absl::Time start = absl::Now();
  for (int round = 1; round <= 3; ++round) {
    ASSERT_TRUE(finisher.Submit(Record(round), false, false).ok());
  }
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(300));  // did not wait
  EXPECT_LT(finished.load(), 3);
  ASSERT_TRUE(finisher.Drain().ok());
  EXPECT_EQ(finished.load(), 3);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(900));
}

TEST_F(RoundFinisherTest, AwaitModelReadWaitsForTheReadsSubmitted) {
  RoundFinisher::Hooks hooks;
  hooks.round_finished = [](const twist::v1::RoundRecord&) {};
  hooks.checkpoint_written = [](int32_t) {};
  RoundFinisher finisher(dataset_->val(), FinisherOptions(), hooks,
                         Reader(absl::Milliseconds(300)));
  // A round with nothing to evaluate or write does not read the model.
  ASSERT_TRUE(finisher.Submit(Record(1), false, false).ok());
  absl::Time start = absl::Now();
  finisher.AwaitModelRead();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(300));
  // One that evaluates does: the owner waits before changing it.
  ASSERT_TRUE(finisher.Submit(Record(2), /*evaluate=*/true, false).ok());
  start = absl::Now();
  finisher.AwaitModelRead();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  ASSERT_TRUE(finisher.Drain().ok());
}

// A round that cannot be finished fails the job: Drain and later Submits
// return the error, and nothing after it is finished.
TEST_F(RoundFinisherTest, FirstErrorIsReturnedAndStopsTheWork) {
  std::ofstream(job_dir_) << "a file where the job's folder should be";
  std::vector<int32_t> finished;
  RoundFinisher::Hooks hooks;
  hooks.round_finished = [&](const twist::v1::RoundRecord& r) {
    finished.push_back(r.round());
  };
  hooks.checkpoint_written = [](int32_t) {};
  RoundFinisher finisher(dataset_->val(), FinisherOptions(), hooks, Reader());
  ASSERT_TRUE(finisher.Submit(Record(1), false, /*checkpoint=*/true)
                  .ok());
  // This one may already see the error.
  finisher.Submit(Record(2), true, false).IgnoreError();
  const absl::Status drained = finisher.Drain();
  EXPECT_FALSE(drained.ok());
  EXPECT_TRUE(absl::StrContains(drained.message(), job_dir_)) << drained;
  EXPECT_FALSE(finisher.Submit(Record(3), false, false).ok());
  EXPECT_TRUE(finished.empty());
}

}  // namespace
}  // namespace twist::coordinator
