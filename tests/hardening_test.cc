// Hardening tests with real processes, each on a cluster of its own: one
// coordinator per state folder, workers that stop within seconds of SIGTERM
// whatever their step, jobs nobody can train, checkpoint folders that cannot
// be read, and LibTorch errors that fail a job but not the coordinator.
// Each test prints the figures it measured.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"
#include "tests/test_models.h"

namespace twist {
namespace {

using ::twist::testing::Cluster;
using ::twist::testing::HttpGet;
using ::twist::testing::Process;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

class HardeningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = twist::testing::MakeTempDir();
    auto data = twist::testing::PrepareSyntheticDataset(dir_, 100000);
    ASSERT_TRUE(data.ok()) << data.status();
    data_ = *data;
    cluster_ = std::make_unique<Cluster>(dir_);
  }
  void TearDown() override {
    cluster_.reset();
    if (!HasFailure()) {
      std::filesystem::remove_all(dir_);
    } else {
      std::fprintf(stderr, "logs kept in %s\n", dir_.c_str());
    }
  }

  int64_t Submit(const std::vector<std::string>& extra) {
    std::vector<std::string> args = {
        "submit",          "--data=" + data_, "--n_layer=1",    "--n_embd=32",
        "--n_head=2",      "--block_size=32", "--batch_size=4", "--rounds=8",
        "--local_steps=3", "--eval_every=4"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::string output;
    EXPECT_EQ(cluster_->Twistctl(args, &output), 0) << output;
    std::smatch m;
    if (!std::regex_search(output, m, std::regex("submitted job (\\d+)")))
      return 0;
    return std::stoll(m[1]);
  }

  nlohmann::json Job(int64_t id) {
    auto body =
        HttpGet(cluster_->http_port(), absl::StrCat("/api/v1/jobs/", id));
    return body.ok() ? nlohmann::json::parse(*body) : nlohmann::json();
  }

  static bool WaitFor(const std::function<bool()>& done, double timeout_s) {
    const auto start = Clock::now();
    while (SecondsSince(start) < timeout_s) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return done();
  }

  bool WaitForState(int64_t id, const std::string& state, double timeout_s) {
    return WaitFor([&] { return Job(id).value("state", "") == state; },
                   timeout_s);
  }

  std::string dir_, data_;
  std::unique_ptr<Cluster> cluster_;
};

TEST_F(HardeningTest, SecondCoordinatorOnAUsedStateFolderRefusesAndTheFirstServesOn) {
  ASSERT_TRUE(cluster_->StartCoordinator().ok());
  const auto start = Clock::now();
  auto second = Process::Start(
      {TWIST_COORDINATOR_BINARY, "--listen=127.0.0.1:0", "--http=",
       "--state_dir=" + dir_ + "/state"},
      dir_ + "/second-coordinator.log");
  ASSERT_TRUE(second.ok());
  const int rc = (*second)->Wait(30);
  const double exit_s = SecondsSince(start);
  EXPECT_NE(rc, 0);
  const std::string log = (*second)->Log();
  EXPECT_TRUE(absl::StrContains(
      log, absl::StrCat("state directory ", dir_, "/state is in use by another "
                        "coordinator (pid ",
                        cluster_->coordinator()->pid(), " on host ")))
      << log;
  EXPECT_LT(exit_s, 10);
  // The first one serves on.
  EXPECT_TRUE(cluster_->coordinator()->Running());
  std::string output;
  EXPECT_EQ(cluster_->Twistctl({"list"}, &output), 0) << output;
  std::printf("[figures] second coordinator refused in %.2f s\n", exit_s);
  // kill -9 leaves no stale lock: a new coordinator starts at once.
  cluster_->coordinator()->Signal(SIGKILL, /*wait=*/true);
  EXPECT_TRUE(cluster_->RestartCoordinator().ok());
}

TEST_F(HardeningTest, SigtermEndsAWorkerMidStepWithinFiveSeconds) {
  ASSERT_TRUE(cluster_->StartCoordinator().ok());
  ASSERT_TRUE(cluster_->StartWorker("slow").ok());
  ASSERT_TRUE(cluster_->WaitForLiveWorkers(1).ok());
  // One local step of this model on one thread takes several seconds.
  const int64_t id =
      Submit({"--n_layer=4", "--n_embd=512", "--n_head=8", "--block_size=256",
              "--batch_size=16", "--local_steps=4", "--rounds=2"});
  ASSERT_GT(id, 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto body = HttpGet(cluster_->http_port(), "/api/v1/workers");
        return body.ok() && absl::StrContains(*body, "\"training\"");
      },
      120));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // mid-step
  const auto start = Clock::now();
  Process* worker = cluster_->worker("slow");
  ASSERT_EQ(worker->Signal(SIGTERM, /*wait=*/false), 0);
  const int rc = worker->Wait(30);
  const double stop_s = SecondsSince(start);
  EXPECT_EQ(rc, 0) << worker->Log();
  EXPECT_LT(stop_s, 5.0) << worker->Log();
  EXPECT_TRUE(absl::StrContains(worker->Log(), "left the coordinator"))
      << worker->Log();
  // It did not wait for the step it was in.
  EXPECT_TRUE(absl::StrContains(worker->Log(), "local step unfinished"))
      << worker->Log();
  std::printf("[figures] SIGTERM mid-step: the worker exited after %.2f s\n",
              stop_s);
}

TEST_F(HardeningTest, JobWhoseOnlyWorkerCannotTrainItFailsWithItsReason) {
  ASSERT_TRUE(cluster_->StartCoordinator().ok());
  // The worker looks datasets up in a folder that does not hold this one.
  ASSERT_TRUE(
      cluster_->StartWorker("nodata", {"--data_dir=" + dir_ + "/elsewhere"})
          .ok());
  ASSERT_TRUE(cluster_->WaitForLiveWorkers(1).ok());
  const int64_t id = Submit({"--deadline_floor_s=1"});
  ASSERT_GT(id, 0);
  ASSERT_TRUE(WaitForState(id, "failed", 60)) << Job(id).dump();
  const nlohmann::json job = Job(id);
  const std::string reason = job["reason"];
  EXPECT_TRUE(absl::StrContains(reason, "can train this job")) << reason;
  EXPECT_TRUE(absl::StrContains(reason, "worker nodata on ")) << reason;
  EXPECT_TRUE(absl::StrContains(reason, "elsewhere")) << reason;
  // No round was counted: only the evaluation before training.
  EXPECT_EQ(job["round"], 0);
  EXPECT_EQ(job["rounds"].size(), 1u);
  std::printf("[figures] job with no able worker failed: %s\n",
              reason.c_str());
}

TEST_F(HardeningTest, UnreadableCheckpointFolderFailsTheJobAndKeepsItsHistory) {
  ASSERT_TRUE(cluster_->StartCoordinator().ok());
  ASSERT_TRUE(cluster_->StartWorker("w").ok());
  ASSERT_TRUE(cluster_->WaitForLiveWorkers(1).ok());
  const int64_t id = Submit({"--rounds=40", "--checkpoint_every=2"});
  ASSERT_TRUE(WaitFor([&] { return Job(id).value("round", 0) >= 6; }, 120));
  ASSERT_EQ(cluster_->coordinator()->Signal(SIGTERM, /*wait=*/true), 0);
  // A file takes the checkpoint folder's place while the coordinator is down.
  const std::string job_dir = absl::StrCat(dir_, "/state/jobs/", id);
  std::filesystem::rename(job_dir, job_dir + ".moved");
  std::ofstream(job_dir) << "not a folder\n";
  ASSERT_TRUE(cluster_->RestartCoordinator().ok());
  ASSERT_TRUE(WaitForState(id, "failed", 60)) << Job(id).dump();
  const nlohmann::json job = Job(id);
  const std::string reason = job["reason"];
  EXPECT_TRUE(absl::StrContains(reason, job_dir)) << reason;
  EXPECT_TRUE(absl::StrContains(reason, "Not a directory")) << reason;
  EXPECT_TRUE(absl::StrContains(reason, "recorded rounds are kept")) << reason;
  // Nothing was deleted: every round up to the stop is still there.
  EXPECT_GE(job["rounds"].size(), 7u);
  EXPECT_GE(job["round"].get<int>(), 6);
  std::printf("[figures] unreadable checkpoint folder: job failed keeping %zu "
              "rounds: %s\n",
              job["rounds"].size(), reason.c_str());
}

// Token ids beyond the vocabulary, written over a prepared token file
// (lengths, and so meta.json, unchanged): LibTorch's embedding lookup throws.
void CorruptTokens(const std::string& path) {
  const auto size = std::filesystem::file_size(path);
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  for (std::uintmax_t at = 0; at + 2 <= size; at += 2 * 17) {
    f.seekp(static_cast<std::streamoff>(at));
    f.write("\xff\xff", 2);
  }
}

TEST_F(HardeningTest, LibTorchErrorInTheCoordinatorFailsTheJobNotTheProcess) {
  CorruptTokens(data_ + "/val.bin");
  ASSERT_TRUE(cluster_->StartCoordinator().ok());
  const int64_t id = Submit({});
  ASSERT_GT(id, 0);
  ASSERT_TRUE(WaitForState(id, "failed", 60)) << Job(id).dump();
  const std::string reason = Job(id)["reason"];
  EXPECT_TRUE(absl::StrContains(reason, "evaluating the model")) << reason;
  EXPECT_TRUE(absl::StrContains(reason, "out of range")) << reason;
  EXPECT_TRUE(cluster_->coordinator()->Running());
  std::string output;
  EXPECT_EQ(cluster_->Twistctl({"list"}, &output), 0) << output;
}

TEST_F(HardeningTest, LibTorchErrorInAWorkerIsAnErrorUpdateAndTheWorkerLives) {
  CorruptTokens(data_ + "/train.bin");
  ASSERT_TRUE(cluster_->StartCoordinator().ok());
  ASSERT_TRUE(cluster_->StartWorker("w").ok());
  ASSERT_TRUE(cluster_->WaitForLiveWorkers(1).ok());
  const int64_t id = Submit({"--deadline_floor_s=1"});
  ASSERT_GT(id, 0);
  ASSERT_TRUE(WaitForState(id, "failed", 60)) << Job(id).dump();
  const std::string reason = Job(id)["reason"];
  EXPECT_TRUE(absl::StrContains(reason, "training the subnetwork")) << reason;
  EXPECT_TRUE(absl::StrContains(reason, "out of range")) << reason;
  EXPECT_TRUE(cluster_->worker("w")->Running()) << cluster_->worker("w")->Log();
}

}  // namespace
}  // namespace twist
