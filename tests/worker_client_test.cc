// The worker's loop against an in-process fake coordinator: what a status
// from the network does to it, and the names its heartbeats report.
#include "worker/worker_client.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "twist/v1/worker_service.grpc.pb.h"

namespace twist::worker {
namespace {

TEST(WorkerStateTest, NamesAreTheHeartbeatStrings) {
  EXPECT_STREQ(WorkerStateName(WorkerState::kIdle), "idle");
  EXPECT_STREQ(WorkerStateName(WorkerState::kReceiving), "receiving");
  EXPECT_STREQ(WorkerStateName(WorkerState::kTraining), "training");
  EXPECT_STREQ(WorkerStateName(WorkerState::kSending), "sending");
}

// What the fake coordinator was asked.
struct Calls {
  std::atomic<int> joins{0};
  std::atomic<int> polls{0};
  std::atomic<int> leaves{0};
};

// Joins every worker and keeps it.
class FakeWorkerService final : public twist::v1::WorkerService::Service {
 public:
  explicit FakeWorkerService(Calls* calls) : calls_(calls) {}

  grpc::Status Join(grpc::ServerContext*, const twist::v1::JoinRequest*,
                    twist::v1::JoinResponse* response) override {
    ++calls_->joins;
    response->set_worker_id("w1");
    response->set_incarnation(7);
    response->set_heartbeat_interval_s(0.05);
    return grpc::Status::OK;
  }
  grpc::Status Heartbeat(grpc::ServerContext*,
                         const twist::v1::HeartbeatRequest*,
                         twist::v1::HeartbeatResponse* response) override {
    response->set_incarnation(7);
    return grpc::Status::OK;
  }
  grpc::Status Leave(grpc::ServerContext*, const twist::v1::LeaveRequest*,
                     twist::v1::LeaveResponse*) override {
    ++calls_->leaves;
    return grpc::Status::OK;
  }

 private:
  Calls* const calls_;
};

// Answers every ReceiveAssignment with `code`.
class FakeTransfer final : public twist::v1::WorkerTransfer::Service {
 public:
  FakeTransfer(Calls* calls, grpc::StatusCode code)
      : calls_(calls), code_(code) {}

  grpc::Status ReceiveAssignment(
      grpc::ServerContext*, const twist::v1::AssignmentRequest*,
      grpc::ServerWriter<twist::v1::AssignmentMessage>*) override {
    ++calls_->polls;
    return grpc::Status(code_, "the fake coordinator says no");
  }

 private:
  Calls* const calls_;
  const grpc::StatusCode code_;
};

class WorkerClientTest : public ::testing::TestWithParam<grpc::StatusCode> {
 protected:
  void Start(grpc::StatusCode code) {
    transfer_ = std::make_unique<FakeTransfer>(&calls_, code);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&workers_);
    builder.RegisterService(transfer_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    absl::StatusOr<common::Connection> connection = common::Connect(
        "127.0.0.1:" + std::to_string(port), common::ClientSecurity{});
    ASSERT_TRUE(connection.ok()) << connection.status();
    WorkerClient::Options options;
    options.poll_s = 0.1;
    // No assignment ever arrives, so the trainer is never called.
    client_ = std::make_unique<WorkerClient>(options, *connection, nullptr);
    run_ = std::async(std::launch::async, [this] { return client_->Run(); });
  }
  void TearDown() override {
    if (client_ != nullptr) {
      client_->Stop();
      if (run_.valid()) run_.wait();
    }
    client_.reset();
    if (server_ != nullptr) server_->Shutdown();
  }
  // Waits (up to 20 s) until `done` holds.
  static bool Eventually(const std::function<bool()>& done) {
    for (int i = 0; i < 1000 && !done(); ++i) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    return done();
  }

  Calls calls_;
  FakeWorkerService workers_{&calls_};
  std::unique_ptr<FakeTransfer> transfer_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<WorkerClient> client_;
  std::future<absl::Status> run_;
};

// Whatever status a poll brings back, the worker retries it: only its own
// trainer can say the device is unusable and stop it.
TEST_P(WorkerClientTest, AStatusFromTheNetworkDoesNotStopTheWorker) {
  Start(GetParam());
  ASSERT_TRUE(Eventually([&] { return calls_.polls.load() >= 3; }))
      << "polls: " << calls_.polls.load();
  if (run_.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
    FAIL() << "the worker stopped: " << run_.get();
  }
  client_->Stop();
  ASSERT_EQ(run_.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_TRUE(run_.get().ok());
  if (GetParam() == grpc::StatusCode::NOT_FOUND) {
    // "I do not know you": the worker joined again before each poll.
    EXPECT_GE(calls_.joins.load(), 3);
  } else {
    EXPECT_EQ(calls_.joins.load(), 1);
    EXPECT_EQ(calls_.leaves.load(), 1);  // a clean goodbye
  }
}

INSTANTIATE_TEST_SUITE_P(Codes, WorkerClientTest,
                         ::testing::Values(grpc::StatusCode::ABORTED,
                                           grpc::StatusCode::NOT_FOUND,
                                           grpc::StatusCode::INTERNAL));

}  // namespace
}  // namespace twist::worker
