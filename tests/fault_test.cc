// Fault tests with real processes: workers killed, stopped, slowed or shut
// down mid-round, and the coordinator killed and restarted, on one cluster
// (one ctest test). Each test prints the figures it measured.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/model/threads.h"
#include "coordinator/checkpoint.h"
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

class FaultTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(twist::testing::MakeTempDir());
    auto data = twist::testing::PrepareSyntheticDataset(*dir_, 200000);
    ASSERT_TRUE(data.ok()) << data.status();
    data_ = new std::string(*data);
    cluster_ = new Cluster(*dir_);
    absl::Status s = cluster_->StartCoordinator(
        {"--heartbeat_interval_s=0.25", "--heartbeat_timeout_s=1.5"});
    ASSERT_TRUE(s.ok()) << s;
    for (const char* name : {"alpha", "beta"}) {
      ASSERT_TRUE(cluster_->StartWorker(name).ok());
    }
    s = cluster_->WaitForLiveWorkers(2);
    ASSERT_TRUE(s.ok()) << s;
  }

  static void TearDownTestSuite() {
    delete cluster_;
    if (!::testing::UnitTest::GetInstance()->Failed()) {
      std::filesystem::remove_all(*dir_);
    } else {
      std::fprintf(stderr, "logs kept in %s\n", dir_->c_str());
    }
  }

  // A small, quick job; `extra` options override.
  static int64_t Submit(const std::vector<std::string>& extra) {
    std::vector<std::string> args = {
        "submit",         "--data=" + *data_, "--n_layer=2",    "--n_embd=64",
        "--n_head=4",     "--block_size=64",  "--batch_size=8", "--lr=3e-3",
        "--eval_every=5", "--local_steps=25"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::string output;
    const int rc = cluster_->Twistctl(args, &output);
    EXPECT_EQ(rc, 0) << output;
    std::smatch m;
    if (!std::regex_search(output, m, std::regex("submitted job (\\d+)")))
      return 0;
    return std::stoll(m[1]);
  }

  static nlohmann::json Job(int64_t id) {
    auto body =
        HttpGet(cluster_->http_port(), absl::StrCat("/api/v1/jobs/", id));
    return body.ok() ? nlohmann::json::parse(*body) : nlohmann::json();
  }

  static nlohmann::json Workers() {
    auto body = HttpGet(cluster_->http_port(), "/api/v1/workers");
    return body.ok() ? nlohmann::json::parse(*body)["workers"]
                     : nlohmann::json::array();
  }

  // Polls until `done` or `timeout_s`; false on timeout.
  static bool WaitFor(const std::function<bool()>& done, double timeout_s) {
    const auto start = Clock::now();
    while (SecondsSince(start) < timeout_s) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return done();
  }

  static bool WaitForRound(int64_t id, int round, double timeout_s = 120) {
    return WaitFor(
        [&] {
          const auto j = Job(id);
          return j.is_object() && j.value("round", 0) >= round;
        },
        timeout_s);
  }

  static bool WaitForEnd(int64_t id, double timeout_s = 300) {
    return WaitFor(
        [&] {
          const auto j = Job(id);
          return j.is_object() &&
                 (j["state"] == "completed" || j["state"] == "failed" ||
                  j["state"] == "cancelled");
        },
        timeout_s);
  }

  static bool Live(const std::string& name) {
    for (const auto& w : Workers()) {
      if (w["name"] == name && w["live"].get<bool>()) return true;
    }
    return false;
  }

  // The reason a named worker's update was missing in a round, or "".
  static std::string DropReason(const nlohmann::json& round,
                                const std::string& name) {
    for (const auto& w : round["workers"]) {
      if (w["worker_name"] == name && !w["accepted"].get<bool>())
        return w["reason"];
    }
    return "";
  }

  // Every round 0..R exactly once, in order.
  static void ExpectCompleteHistory(const nlohmann::json& job) {
    const int rounds = job["rounds_total"];
    ASSERT_EQ(job["rounds"].size(), static_cast<size_t>(rounds + 1))
        << job["rounds"].dump();
    for (int r = 0; r <= rounds; ++r) EXPECT_EQ(job["rounds"][r]["round"], r);
  }

  static std::string* dir_;
  static std::string* data_;
  static Cluster* cluster_;
};

std::string* FaultTest::dir_ = nullptr;
std::string* FaultTest::data_ = nullptr;
Cluster* FaultTest::cluster_ = nullptr;

TEST_F(FaultTest, WorkerKilledMidRoundIsDroppedAndTheJobCompletes) {
  ASSERT_TRUE(cluster_->StartWorker("gamma").ok());
  ASSERT_TRUE(cluster_->WaitForLiveWorkers(3).ok());
  const int64_t id =
      Submit({"--name=kill-worker", "--rounds=14", "--min_workers=2"});
  ASSERT_TRUE(WaitForRound(id, 3));
  const auto killed_at = Clock::now();
  cluster_->worker("gamma")->Signal(SIGKILL, /*wait=*/true);
  ASSERT_TRUE(WaitFor([&] { return !Live("gamma"); }, 10));
  const double detect_s = SecondsSince(killed_at);
  ASSERT_TRUE(WaitForEnd(id));
  const auto job = Job(id);
  EXPECT_EQ(job["state"], "completed") << job["reason"];
  ExpectCompleteHistory(job);
  int dropped_round = -1;
  for (const auto& r : job["rounds"]) {
    const std::string why = DropReason(r, "gamma");
    if (!why.empty()) {
      EXPECT_TRUE(absl::StrContains(why, "worker lost: no heartbeat") ||
                  absl::StrContains(why, "assignment not delivered"))
          << why;
      dropped_round = r["round"];
      break;
    }
  }
  ASSERT_GT(dropped_round, 0) << "no round records gamma's loss";
  // Later rounds go on with the two live workers, all accepted.
  const auto& last = job["rounds"][job["rounds"].size() - 1];
  ASSERT_EQ(last["workers"].size(), 2u);
  for (const auto& w : last["workers"]) EXPECT_TRUE(w["accepted"].get<bool>());
  std::printf(
      "[figures] worker kill -9: detected dead after %.2f s (heartbeat timeout "
      "1.5 s); "
      "round %d lost gamma's update; the round took %.2f s; 0 rounds lost\n",
      detect_s, dropped_round,
      job["rounds"][dropped_round]["duration_s"].get<double>());
}

TEST_F(FaultTest, StoppedWorkerIsDroppedAtTheHeartbeatTimeoutAndRejoins) {
  const int64_t id =
      Submit({"--name=sigstop", "--rounds=40", "--min_workers=1"});
  ASSERT_TRUE(WaitForRound(id, 2));
  Process* beta = cluster_->worker("beta");
  const auto stopped_at = Clock::now();
  beta->Signal(SIGSTOP, /*wait=*/false);
  ASSERT_TRUE(WaitFor([&] { return !Live("beta"); }, 10));
  const double detect_s = SecondsSince(stopped_at);
  const int round_at_drop = Job(id)["round"];
  beta->Signal(SIGCONT, /*wait=*/false);
  const auto resumed_at = Clock::now();
  ASSERT_TRUE(WaitFor([&] { return Live("beta"); }, 15));
  const double rejoin_s = SecondsSince(resumed_at);
  ASSERT_TRUE(WaitForEnd(id));
  const auto job = Job(id);
  EXPECT_EQ(job["state"], "completed") << job["reason"];
  ExpectCompleteHistory(job);
  // Some round ran without beta, and a later one with beta accepted again.
  int without = -1, with_again = -1;
  for (const auto& r : job["rounds"]) {
    if (r["round"] == 0) continue;
    bool has_beta = false;
    for (const auto& w : r["workers"]) {
      if (w["worker_name"] == "beta" && w["accepted"].get<bool>())
        has_beta = true;
    }
    if (!has_beta && without < 0) without = r["round"];
    if (has_beta && without > 0 && with_again < 0) with_again = r["round"];
  }
  EXPECT_GT(without, 0);
  EXPECT_GT(with_again, without) << "beta never took part again";
  std::printf(
      "[figures] worker SIGSTOP: dropped after %.2f s (timeout 1.5 s) near "
      "round %d; "
      "rejoined %.2f s after SIGCONT, trained again from round %d; 0 rounds "
      "lost\n",
      detect_s, round_at_drop, rejoin_s, with_again);
}

TEST_F(FaultTest, SlowWorkerThatHeartbeatsIsDroppedAtTheRoundDeadline) {
  ASSERT_TRUE(
      cluster_->StartWorker("slow", {"--test_delay_after_train_s=30"}).ok());
  // Whatever happens here, later tests must not wait for this worker.
  struct KillSlow {
    ~KillSlow() { cluster_->worker("slow")->Signal(SIGKILL, true); }
  } kill_slow;
  ASSERT_TRUE(cluster_->WaitForLiveWorkers(3).ok());
  const int64_t id = Submit({"--name=straggler", "--rounds=6",
                             "--min_workers=3", "--round_deadline_s=6",
                             "--deadline_floor_s=1", "--deadline_factor=3"});
  ASSERT_TRUE(WaitForEnd(id, 120));
  const auto job = Job(id);
  EXPECT_EQ(job["state"], "completed") << job["reason"];
  ExpectCompleteHistory(job);
  for (size_t r = 1; r < job["rounds"].size(); ++r) {
    const auto& round = job["rounds"][r];
    const std::string why = DropReason(round, "slow");
    EXPECT_TRUE(absl::StrContains(why, "straggler: round deadline"))
        << r << ": " << why;
    for (const auto& w : round["workers"]) {
      if (w["worker_name"] != "slow") EXPECT_TRUE(w["accepted"].get<bool>());
    }
  }
  // The first round waits the configured limit; later ones learn from the
  // update times of the fast workers.
  const double first = job["rounds"][1]["deadline_s"],
               later = job["rounds"][3]["deadline_s"];
  EXPECT_DOUBLE_EQ(first, 6.0);
  EXPECT_LT(later, first);
  EXPECT_GE(later, 1.0);
  EXPECT_TRUE(Live("slow"))
      << "a slow worker keeps heartbeating and stays live";
  std::printf(
      "[figures] straggler: deadline %.2f s in round 1, %.2f s from round 3 "
      "(3 x median update time, floor 1 s); round durations %.2f s and %.2f "
      "s\n",
      first, later, job["rounds"][1]["duration_s"].get<double>(),
      job["rounds"][3]["duration_s"].get<double>());
}

TEST_F(FaultTest, WorkerShutDownMidRoundIsRecordedAsALeave) {
  // Slow, so that it is certainly inside a round when it is stopped.
  ASSERT_TRUE(
      cluster_->StartWorker("leaver", {"--test_delay_after_train_s=60"}).ok());
  struct KillLeaver {
    ~KillLeaver() { cluster_->worker("leaver")->Signal(SIGKILL, true); }
  } kill_leaver;
  ASSERT_TRUE(WaitFor([&] { return Live("leaver"); }, 10));
  const int64_t id = Submit({"--name=leave", "--rounds=10", "--min_workers=2"});
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const auto& w : Workers()) {
          if (w["name"] == "leaver" && w["status"] == "training") return true;
        }
        return false;
      },
      60));
  EXPECT_EQ(cluster_->worker("leaver")->Signal(SIGTERM, /*wait=*/true), 0);
  ASSERT_TRUE(WaitForEnd(id));
  const auto job = Job(id);
  EXPECT_EQ(job["state"], "completed");
  std::string why;
  for (const auto& r : job["rounds"]) {
    if (why.empty()) why = DropReason(r, "leaver");
  }
  EXPECT_EQ(why, "worker left (shut down cleanly)");
}

TEST_F(FaultTest, CoordinatorKilledMidJobResumesFromItsCheckpoint) {
  const int64_t id = Submit({"--name=kill-coordinator", "--rounds=24",
                             "--checkpoint_every=4", "--min_workers=2"});
  ASSERT_TRUE(WaitForRound(id, 10));
  const int round_at_kill = Job(id)["round"];
  cluster_->coordinator()->Signal(SIGKILL, /*wait=*/true);
  const auto restarted_at = Clock::now();
  ASSERT_TRUE(cluster_->RestartCoordinator().ok());
  // The job resumes by itself, from the last checkpoint (a multiple of 4).
  ASSERT_TRUE(WaitFor(
      [&] {
        const auto j = Job(id);
        return j.is_object() && j["state"] == "running" &&
               !j["notice"].get<std::string>().empty();
      },
      60));
  const std::string notice = Job(id)["notice"];
  std::smatch m;
  ASSERT_TRUE(std::regex_match(
      notice, m, std::regex("resumed from the checkpoint of round (\\d+)")))
      << notice;
  // The newest checkpoint: round_at_kill rounded down to a multiple of 4, or
  // the one before when the kill came between a round and its checkpoint.
  const int checkpoint = std::stoi(m[1]);
  EXPECT_EQ(checkpoint % 4, 0);
  EXPECT_LE(checkpoint, round_at_kill);
  EXPECT_GE(checkpoint, round_at_kill - 4);
  ASSERT_TRUE(WaitForRound(id, checkpoint + 1, 60));
  const double resume_s = SecondsSince(restarted_at);
  ASSERT_TRUE(WaitForEnd(id));
  const auto job = Job(id);
  EXPECT_EQ(job["state"], "completed") << job["reason"];
  ExpectCompleteHistory(job);  // no round twice, none missing
  EXPECT_LT(job["rounds"][24]["val_loss"].get<double>(),
            job["rounds"][0]["val_loss"].get<double>());
  std::printf(
      "[figures] coordinator kill -9 at round %d: resumed from round %d (%d "
      "rounds run "
      "again), first new round finished %.2f s after the restart began\n",
      round_at_kill, checkpoint, round_at_kill - checkpoint, resume_s);
}

TEST_F(FaultTest, CorruptNewestCheckpointFallsBackToThePreviousOne) {
  const int64_t id = Submit({"--name=corrupt", "--rounds=20",
                             "--checkpoint_every=3", "--min_workers=2"});
  ASSERT_TRUE(WaitForRound(id, 7));
  // SIGTERM: the coordinator checkpoints the last finished round and stops.
  EXPECT_EQ(cluster_->coordinator()->Signal(SIGTERM, /*wait=*/true), 0);
  const std::string job_dir = absl::StrCat(*dir_, "/state/jobs/", id);
  auto listed = coordinator::ListCheckpoints(job_dir);
  ASSERT_TRUE(listed.ok()) << listed.status();
  const auto& checkpoints = *listed;
  ASSERT_GE(checkpoints.size(), 2u);
  const int newest = checkpoints[0].first, previous = checkpoints[1].first;
  EXPECT_GE(newest, 7);  // the one written at SIGTERM
  {
    // Flip bytes in the middle of the newest checkpoint's data.
    std::fstream f(checkpoints[0].second,
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(
        std::filesystem::file_size(checkpoints[0].second) / 2));
    f.write("\xde\xad\xbe\xef", 4);
  }
  ASSERT_TRUE(cluster_->RestartCoordinator().ok());
  ASSERT_TRUE(WaitFor(
      [&] { return !Job(id)["notice"].get<std::string>().empty(); }, 60));
  const std::string notice = Job(id)["notice"];
  EXPECT_TRUE(absl::StartsWith(
      notice, absl::StrCat("resumed from the checkpoint of round ", previous)))
      << notice;
  EXPECT_TRUE(absl::StrContains(
      notice, absl::StrCat("checkpoint of round ", newest, " is unusable")))
      << notice;
  EXPECT_TRUE(absl::StrContains(notice, "checksum mismatch")) << notice;
  ASSERT_TRUE(WaitForEnd(id));
  const auto job = Job(id);
  EXPECT_EQ(job["state"], "completed");
  ExpectCompleteHistory(job);
  std::printf(
      "[figures] corrupt newest checkpoint (round %d): resumed from round %d\n",
      newest, previous);
}

}  // namespace
}  // namespace twist
