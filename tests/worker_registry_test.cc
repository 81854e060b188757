// Tests of the coordinator's worker registry: joining, heartbeats and the
// timeout that drops silent workers, leaving, and the mailbox through which
// assignments are handed out, taken and revoked.
#include "coordinator/worker_registry.h"

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/base/clock.h"
#include "gtest/gtest.h"

namespace twist::coordinator {
namespace {

twist::v1::JoinRequest JoinAs(const std::string& name, double capacity = 0) {
  twist::v1::JoinRequest request;
  request.set_name(name);
  request.set_device("cpu");
  request.set_capacity(capacity);
  request.set_threads(4);
  return request;
}

twist::v1::HeartbeatRequest Beat(const std::string& id,
                                 const std::string& status = "") {
  twist::v1::HeartbeatRequest request;
  request.set_worker_id(id);
  request.set_status(status);
  request.set_resident_parameters(1234);
  return request;
}

std::shared_ptr<const Assignment> MakeAssignment(int64_t job, int32_t round) {
  auto a = std::make_shared<Assignment>();
  a->header.set_job_id(job);
  a->header.set_round(round);
  return a;
}

std::vector<std::string> Ids(
    const std::vector<twist::v1::WorkerInfo>& workers) {
  std::vector<std::string> out;
  for (const auto& w : workers) out.push_back(w.id());
  return out;
}

WorkerRegistry::Options Timeout(double seconds) {
  WorkerRegistry::Options options;
  options.heartbeat_timeout_s = seconds;
  return options;
}

TEST(WorkerRegistryTest, JoinGivesIdsInJoinOrderAndRecordsTheRequest) {
  WorkerRegistry registry(Timeout(60));
  const double before = common::NowSeconds();
  EXPECT_EQ(registry.Join(JoinAs("alpha", 2.5), "10.0.0.1:5000"), "w1");
  EXPECT_EQ(registry.Join(JoinAs(""), "10.0.0.2:5000"), "w2");
  EXPECT_EQ(registry.Join(JoinAs("gamma"), "10.0.0.3:5000"), "w3");

  const std::vector<twist::v1::WorkerInfo> live = registry.LiveWorkers();
  ASSERT_EQ(Ids(live), (std::vector<std::string>{"w1", "w2", "w3"}));
  EXPECT_EQ(live[0].name(), "alpha");
  EXPECT_EQ(live[0].device(), "cpu");
  EXPECT_EQ(live[0].capacity(), 2.5);
  EXPECT_EQ(live[0].threads(), 4);
  EXPECT_EQ(live[0].address(), "10.0.0.1:5000");
  EXPECT_TRUE(live[0].live());
  EXPECT_EQ(live[0].status(), "idle");
  EXPECT_GE(live[0].joined_at(), before);
  EXPECT_EQ(live[0].last_heartbeat_at(), live[0].joined_at());
  EXPECT_EQ(live[1].name(), "w2");     // no name: its id
  EXPECT_EQ(live[1].capacity(), 1.0);  // no capacity: 1
  EXPECT_TRUE(registry.Check("w2").live());
}

TEST(WorkerRegistryTest, IdsPastNineStayInJoinOrder) {
  WorkerRegistry registry(Timeout(60));
  std::vector<std::string> expected;
  for (int i = 1; i <= 11; ++i) {
    registry.Join(JoinAs(""), "a");
    expected.push_back("w" + std::to_string(i));
  }
  EXPECT_EQ(Ids(registry.LiveWorkers()), expected);
  EXPECT_EQ(Ids(registry.AllWorkers()), expected);
}

TEST(WorkerRegistryTest, HeartbeatOfAnUnknownWorkerIsNotFound) {
  WorkerRegistry registry(Timeout(60));
  const absl::Status status = registry.Heartbeat(Beat("w9"));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(),
            "worker w9 is unknown to this coordinator: join again");
  const Liveness unknown = registry.Check("w9");
  EXPECT_EQ(unknown.state, Liveness::State::kUnknown);
  EXPECT_EQ(unknown.reason, "unknown worker");
}

TEST(WorkerRegistryTest, HeartbeatUpdatesStatusAndResidentParameters) {
  WorkerRegistry registry(Timeout(60));
  const std::string id = registry.Join(JoinAs("a"), "x");
  const double joined = registry.LiveWorkers()[0].joined_at();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // Without an assignment in hand a worker is idle, whatever it says.
  ASSERT_TRUE(registry.Heartbeat(Beat(id, "training")).ok());
  twist::v1::WorkerInfo info = registry.LiveWorkers()[0];
  EXPECT_EQ(info.status(), "idle");
  EXPECT_EQ(info.resident_parameters(), 1234);
  EXPECT_GT(info.last_heartbeat_at(), joined);
  auto a = std::make_shared<Assignment>();
  a->header.set_job_id(1);
  a->header.set_round(1);
  registry.Offer(id, a);
  ASSERT_TRUE(registry.Take(id, absl::Milliseconds(10)).ok());
  EXPECT_EQ(registry.LiveWorkers()[0].status(), "receiving");
  ASSERT_TRUE(registry.Heartbeat(Beat(id, "training")).ok());
  EXPECT_EQ(registry.LiveWorkers()[0].status(), "training");
  // An empty status keeps the last one.
  ASSERT_TRUE(registry.Heartbeat(Beat(id, "")).ok());
  EXPECT_EQ(registry.LiveWorkers()[0].status(), "training");
  // Once its answer arrived, a heartbeat sent before it cannot make it busy.
  registry.AnswerReceived(id);
  EXPECT_EQ(registry.LiveWorkers()[0].status(), "idle");
  ASSERT_TRUE(registry.Heartbeat(Beat(id, "training")).ok());
  EXPECT_EQ(registry.LiveWorkers()[0].status(), "idle");
}

TEST(WorkerRegistryTest, SilentWorkerIsDroppedAndMustJoinAgain) {
  WorkerRegistry registry(Timeout(0.4));
  const std::string quiet = registry.Join(JoinAs("quiet"), "a");
  const std::string chatty = registry.Join(JoinAs("chatty"), "b");
  for (int i = 0; i < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ASSERT_TRUE(registry.Heartbeat(Beat(chatty)).ok()) << i;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // quiet has been silent for at least 0.5 s, chatty for about 0.1 s.
  EXPECT_EQ(Ids(registry.LiveWorkers()), (std::vector<std::string>{chatty}));

  const Liveness timed_out = registry.Check(quiet);
  EXPECT_EQ(timed_out.state, Liveness::State::kTimedOut);
  const std::string& reason = timed_out.reason;
  EXPECT_EQ(reason.rfind("no heartbeat for ", 0), 0u) << reason;
  EXPECT_NE(reason.find(" s (timeout 0.4 s)"), std::string::npos) << reason;

  const absl::Status beat = registry.Heartbeat(Beat(quiet));
  EXPECT_EQ(beat.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(beat.message().rfind("worker w1 was dropped (no heartbeat for ", 0),
            0u)
      << beat;
  EXPECT_NE(beat.message().find("): join again"), std::string::npos) << beat;

  // Status pages still list it, after the live ones.
  const std::vector<twist::v1::WorkerInfo> all = registry.AllWorkers();
  ASSERT_EQ(Ids(all), (std::vector<std::string>{chatty, quiet}));
  EXPECT_FALSE(all[1].live());
  EXPECT_EQ(all[1].status(), "dropped");

  // A dropped worker gets no assignments.
  registry.Offer(quiet, MakeAssignment(1, 1));
  absl::StatusOr<std::shared_ptr<const Assignment>> taken =
      registry.Take(quiet, absl::Milliseconds(10));
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(taken.status().message(),
            "worker w1 is not registered or was dropped: join again");

  // Joining again gives a new id.
  EXPECT_EQ(registry.Join(JoinAs("quiet"), "a"), "w3");
}

TEST(WorkerRegistryTest, LeaveMarksTheWorkerNotLive) {
  WorkerRegistry registry(Timeout(60));
  const std::string a = registry.Join(JoinAs("a"), "x");
  const std::string b = registry.Join(JoinAs("b"), "y");
  ASSERT_TRUE(registry.Leave(a).ok());
  EXPECT_EQ(Ids(registry.LiveWorkers()), (std::vector<std::string>{b}));
  const Liveness left = registry.Check(a);
  EXPECT_EQ(left.state, Liveness::State::kLeft);
  EXPECT_EQ(left.reason, "shut down cleanly");
  EXPECT_EQ(registry.AllWorkers()[1].status(), "left");
  EXPECT_EQ(registry.Heartbeat(Beat(a)).code(), absl::StatusCode::kNotFound);

  const absl::Status unknown = registry.Leave("w7");
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(unknown.message(), "worker w7 is unknown");
}

TEST(WorkerRegistryTest, OfferThenTakeHandsOverTheSameAssignment) {
  WorkerRegistry registry(Timeout(60));
  const std::string id = registry.Join(JoinAs("a"), "x");
  const auto first = MakeAssignment(3, 1);
  const auto second = MakeAssignment(3, 2);
  registry.Offer(id, first);
  registry.Offer(id, second);  // replaces the untaken one
  absl::StatusOr<std::shared_ptr<const Assignment>> taken =
      registry.Take(id, absl::Seconds(5));
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_EQ(taken->get(), second.get());

  // The mailbox is empty now: the next Take times out with nullptr.
  const absl::Time start = absl::Now();
  absl::StatusOr<std::shared_ptr<const Assignment>> none =
      registry.Take(id, absl::Milliseconds(50));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(*none, nullptr);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));

  EXPECT_EQ(registry.Take("w5", absl::Milliseconds(10)).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(WorkerRegistryTest, RevokeWithdrawsAnUntakenAssignment) {
  WorkerRegistry registry(Timeout(60));
  const std::string id = registry.Join(JoinAs("a"), "x");
  registry.Offer(id, MakeAssignment(3, 1));
  registry.Revoke(id, 3, 2);  // another round: no effect
  registry.Revoke(id, 4, 1);  // another job: no effect
  registry.Revoke(id, 3, 1);
  auto taken = registry.Take(id, absl::Milliseconds(10));
  ASSERT_TRUE(taken.ok());
  EXPECT_EQ(*taken, nullptr);
  EXPECT_FALSE(registry.TakeAbandon(id).has_value());  // never taken

  registry.Offer(id, MakeAssignment(3, 2));
  registry.Revoke(id, 3, 1);  // an older round leaves the new one alone
  taken = registry.Take(id, absl::Milliseconds(10));
  ASSERT_TRUE(taken.ok());
  ASSERT_NE(*taken, nullptr);
  EXPECT_EQ((*taken)->header.round(), 2);
}

TEST(WorkerRegistryTest, RevokeOfATakenAssignmentSetsAbandonOnce) {
  WorkerRegistry registry(Timeout(60));
  const std::string id = registry.Join(JoinAs("a"), "x");
  registry.Offer(id, MakeAssignment(3, 4));
  ASSERT_NE(*registry.Take(id, absl::Seconds(5)), nullptr);
  EXPECT_FALSE(registry.TakeAbandon(id).has_value());
  registry.Revoke(id, 3, 5);  // not the one it holds
  EXPECT_FALSE(registry.TakeAbandon(id).has_value());
  registry.Revoke(id, 3, 4);
  // The worker learns which assignment to drop, once.
  EXPECT_EQ(registry.TakeAbandon(id), std::make_pair(int64_t{3}, int32_t{4}));
  EXPECT_FALSE(registry.TakeAbandon(id).has_value());
  EXPECT_FALSE(registry.TakeAbandon("w9").has_value());
}

TEST(WorkerRegistryTest, RecordRoundUpdatesThroughputAndRoundsDone) {
  WorkerRegistry registry(Timeout(60));
  const std::string id = registry.Join(JoinAs("a"), "x");
  registry.RecordRound(id, 1234.5);
  twist::v1::WorkerInfo info = registry.LiveWorkers()[0];
  EXPECT_EQ(info.tokens_per_s(), 1234.5);
  EXPECT_EQ(info.rounds_done(), 1);
  registry.RecordRound(id, 99);
  info = registry.LiveWorkers()[0];
  EXPECT_EQ(info.tokens_per_s(), 99);
  EXPECT_EQ(info.rounds_done(), 2);
  registry.RecordRound("w9", 5);  // unknown: ignored
  EXPECT_EQ(registry.AllWorkers().size(), 1u);
}

TEST(WorkerRegistryTest, BlockedTakeWakesWhenAnAssignmentIsOffered) {
  WorkerRegistry registry(Timeout(60));
  const std::string id = registry.Join(JoinAs("a"), "x");
  const auto offered = MakeAssignment(1, 1);
  absl::StatusOr<std::shared_ptr<const Assignment>> taken;
  absl::Duration waited;
  std::thread taker([&] {
    const absl::Time start = absl::Now();
    taken = registry.Take(id, absl::Seconds(20));
    waited = absl::Now() - start;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  registry.Offer(id, offered);
  taker.join();
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_EQ(taken->get(), offered.get());
  EXPECT_LT(waited, absl::Seconds(10));
}

TEST(WorkerRegistryTest, BlockedTakeWakesWhenTheWorkerLeaves) {
  WorkerRegistry registry(Timeout(60));
  const std::string id = registry.Join(JoinAs("a"), "x");
  absl::StatusOr<std::shared_ptr<const Assignment>> taken;
  std::thread taker([&] { taken = registry.Take(id, absl::Seconds(20)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const absl::Time left = absl::Now();
  ASSERT_TRUE(registry.Leave(id).ok());
  taker.join();
  EXPECT_LT(absl::Now() - left, absl::Seconds(10));
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace twist::coordinator
