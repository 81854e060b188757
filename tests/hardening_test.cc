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

#include <algorithm>
#include <atomic>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"
#include "tests/test_models.h"
#include "common/rpc/rpc_util.h"
#include "twist/v1/job_service.grpc.pb.h"

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

namespace twist {
namespace {

// The job's wall time per round from its records (rounds 1..R).
double MedianRoundSeconds(const nlohmann::json& job) {
  std::vector<double> t;
  for (const auto& r : job["rounds"]) {
    if (r["round"].get<int>() > 0) t.push_back(r["duration_s"].get<double>());
  }
  if (t.empty()) return 0;
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Resident memory and threads of a process, from /proc.
std::pair<int64_t, int> MemoryAndThreads(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  int64_t rss_kb = 0;
  int threads = 0;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) rss_kb = std::stoll(line.substr(6));
    if (absl::StartsWith(line, "Threads:")) threads = std::stoi(line.substr(8));
  }
  return {rss_kb * 1024, threads};
}

TEST_F(HardeningTest, UnderLoadEveryWatcherSeesEveryRoundOnceInOrder) {
  ASSERT_TRUE(cluster_->StartCoordinator().ok());
  ASSERT_TRUE(cluster_->StartWorker("a").ok());
  ASSERT_TRUE(cluster_->StartWorker("b").ok());
  ASSERT_TRUE(cluster_->WaitForLiveWorkers(2).ok());
  // Rounds of about a second: what the load is measured against.
  const std::vector<std::string> job = {
      "--rounds=12",    "--local_steps=20", "--min_workers=2", "--eval_every=4",
      "--n_layer=2",    "--n_embd=64",      "--n_head=4",      "--block_size=64",
      "--batch_size=8"};
  // Quiet.
  const int64_t quiet = Submit(job);
  ASSERT_TRUE(WaitForState(quiet, "completed", 300));
  const double quiet_s = MedianRoundSeconds(Job(quiet));

  // The same job with 64 watchers, 16 GetJob pollers and 4 HTTP pollers.
  const int64_t loaded = quiet + 1;
  constexpr int kWatchers = 64, kPollers = 16, kHttpPollers = 4;
  std::atomic<bool> done{false};
  std::vector<std::vector<int>> seen(kWatchers);
  std::vector<std::string> watch_status(kWatchers);
  std::atomic<int64_t> polls{0}, poll_errors{0};
  auto channel = common::MakeChannel(cluster_->coordinator_address());
  std::vector<std::thread> threads;
  for (int i = 0; i < kWatchers; ++i) {
    threads.emplace_back([&, i] {
      auto stub = twist::v1::JobService::NewStub(channel);
      // The job may not exist yet: watch once it does.
      for (int attempt = 0; attempt < 400 && !done.load(); ++attempt) {
        grpc::ClientContext context;
        context.set_deadline(common::DeadlineIn(600));
        twist::v1::WatchJobRequest request;
        request.set_job_id(loaded);
        auto reader = stub->WatchJob(&context, request);
        twist::v1::JobEvent event;
        while (reader->Read(&event)) {
          if (event.has_round()) seen[i].push_back(event.round().round());
        }
        const grpc::Status s = reader->Finish();
        if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
          std::this_thread::sleep_for(std::chrono::milliseconds(25));
          continue;
        }
        watch_status[i] = s.ok() ? "ok" : s.error_message();
        return;
      }
    });
  }
  for (int i = 0; i < kPollers; ++i) {
    threads.emplace_back([&] {
      auto stub = twist::v1::JobService::NewStub(channel);
      while (!done.load()) {
        grpc::ClientContext context;
        context.set_deadline(common::DeadlineIn(30));
        twist::v1::GetJobRequest request;
        request.set_job_id(loaded);
        request.set_include_rounds(true);
        twist::v1::Job job;
        const grpc::Status s = stub->GetJob(&context, request, &job);
        ++polls;
        if (!s.ok() && s.error_code() != grpc::StatusCode::NOT_FOUND) {
          ++poll_errors;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
  }
  for (int i = 0; i < kHttpPollers; ++i) {
    threads.emplace_back([&] {
      while (!done.load()) {
        if (!HttpGet(cluster_->http_port(), "/api/v1/jobs").ok()) ++poll_errors;
        ++polls;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_EQ(Submit(job), loaded);
  ASSERT_TRUE(WaitForState(loaded, "completed", 300));
  const auto [rss, coordinator_threads] =
      MemoryAndThreads(cluster_->coordinator()->pid());
  done.store(true);
  for (auto& t : threads) t.join();
  const double loaded_s = MedianRoundSeconds(Job(loaded));

  std::vector<int> every(13);
  for (int r = 0; r <= 12; ++r) every[r] = r;
  for (int i = 0; i < kWatchers; ++i) {
    EXPECT_EQ(watch_status[i], "ok") << "watcher " << i;
    EXPECT_EQ(seen[i], every) << "watcher " << i;
  }
  EXPECT_GT(polls.load(), 0);
  EXPECT_EQ(poll_errors.load(), 0);
  std::printf(
      "[figures] load (64 watchers; 16 GetJob and 4 HTTP pollers, 10/s each): "
      "median "
      "round %.3f s against %.3f s quiet (%+.1f%%); %lld polls; coordinator "
      "%d threads, %.0f MB resident\n",
      loaded_s, quiet_s, 100.0 * (loaded_s / quiet_s - 1),
      static_cast<long long>(polls.load()), coordinator_threads, rss / 1e6);
}

TEST_F(HardeningTest, WatchersBeyondTheCapAreRefusedWithResourceExhausted) {
  ASSERT_TRUE(cluster_->StartCoordinator({"--max_watchers=2"}).ok());
  const int64_t id = Submit({});  // no worker: it waits, watchers stay
  auto channel = common::MakeChannel(cluster_->coordinator_address());
  auto stub = twist::v1::JobService::NewStub(channel);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<twist::v1::JobEvent>>> readers;
  for (int i = 0; i < 2; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    twist::v1::WatchJobRequest request;
    request.set_job_id(id);
    readers.push_back(stub->WatchJob(contexts.back().get(), request));
    twist::v1::JobEvent event;
    ASSERT_TRUE(readers.back()->Read(&event));  // the stream is being served
  }
  grpc::ClientContext context;
  twist::v1::WatchJobRequest request;
  request.set_job_id(id);
  auto third = stub->WatchJob(&context, request);
  twist::v1::JobEvent event;
  EXPECT_FALSE(third->Read(&event));
  const grpc::Status s = third->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "--max_watchers"))
      << s.error_message();
  for (auto& c : contexts) c->TryCancel();
  for (auto& r : readers) r->Finish();
}

}  // namespace
}  // namespace twist
