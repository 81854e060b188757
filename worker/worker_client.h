// The worker daemon's connection to the coordinator: join (again whenever the
// coordinator forgets it or restarts), heartbeat on a thread of its own, and
// loop receive -> train -> send (with overlap_steps, the next round's first
// steps train on a thread of their own from before the send until the next
// assignment has arrived). Reconnects with exponential backoff while the
// coordinator is away; on Stop() it abandons its round and says goodbye.
#ifndef TWIST_WORKER_WORKER_CLIENT_H_
#define TWIST_WORKER_WORKER_CLIENT_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/rpc/security.h"
#include "twist/v1/worker_service.grpc.pb.h"
#include "worker/subnet_trainer.h"

namespace twist::worker {

// What the worker is doing, as its heartbeats report it.
enum class WorkerState { kIdle, kReceiving, kTraining, kSending };
// The name of `state` in the heartbeat's status field: "idle", "receiving",
// "training" or "sending".
const char* WorkerStateName(WorkerState state);

// How one receive -> train -> send cycle ended.
enum class ServeOutcome {
  kNoWork,          // the poll ended without an assignment
  kServed,          // the round was answered: an update, or why there is none
  kAbandoned,       // the round was given up (Stop(), dropped, or stale)
  kFailed,          // a call or a stream failed: try again after a backoff
  kRejoin,          // the coordinator does not know this worker: join again
  kDeviceUnusable,  // the trainer found the device untrustworthy: stop
};
struct ServeResult {
  ServeOutcome outcome;
  absl::Status status;  // why, for kFailed, kRejoin and kDeviceUnusable
};

class WorkerClient {
 public:
  struct Options {
    std::string coordinator = "127.0.0.1:7070";
    std::string name;  // shown on the coordinator's status pages
    std::string device_name = "cpu";
    double capacity = 1.0;
    int threads = 0;
    double poll_s = 10;  // how long one ReceiveAssignment may wait
    // Test-only: sleep this long after training each round, while still
    // heartbeating (a slow worker, for straggler tests).
    double delay_after_train_s = 0;
  };

  // `connection` reaches the coordinator (TLS and token as configured).
  WorkerClient(Options options, common::Connection connection,
               SubnetTrainer* trainer);
  ~WorkerClient();

  // Runs until Stop(); returns the reason it stopped (an error when it had
  // to: wrong credentials, another protocol version, an unusable device).
  absl::Status Run();
  // Asks Run() to return: abandons the current round and leaves. Safe to
  // call from any thread (not from a signal handler).
  void Stop();
  // True when Run() returned while a local step was still computing on its
  // thread: the process should exit at once rather than wait for it.
  bool training_left_running() const { return training_left_running_.load(); }

 private:
  absl::Status Join();
  // Says goodbye, so the coordinator records a leave rather than a loss.
  void Leave();
  void HeartbeatLoop();
  // One heartbeat call and what its answer asks for.
  void Heartbeat(const twist::v1::HeartbeatRequest& request, double interval_s);
  // One receive -> train -> send cycle.
  ServeResult ServeOnce();
  // Notes the assignment in hand (the round the heartbeat may abandon) and
  // starts the header of its answer.
  twist::v1::UpdateHeader BeginRound(const std::string& worker_id,
                                     const twist::v1::AssignmentHeader& header);
  // Trains the received subnetwork and sends the update.
  ServeResult TrainAndSend(twist::v1::UpdateHeader update,
                           PreparedSubnet prepared);
  // After training failed: abandoned, or the error sent to the coordinator.
  ServeResult TrainingFailed(twist::v1::UpdateHeader update,
                             const absl::Status& status);
  // Trains on a thread of its own and waits for it, or for Stop().
  absl::StatusOr<TrainedSubnet> Train(PreparedSubnet prepared);
  // Overlapping rounds: trains the next round's first steps
  // (SubnetTrainer::TrainAhead) on a thread of their own while the update
  // travels and the next assignment arrives.
  void StartStepsAhead();
  // Waits for them, or for Stop(), before the next round trains.
  void FinishStepsAhead();
  // Waits, holding `mu`, until a training thread sets `done` or Stop();
  // false when stopped first (the thread is then left running:
  // training_left_running()).
  bool AwaitUnlessStopped(absl::Mutex& mu, const bool& done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // OK, or Unavailable when the coordinator could not be reached (a refused
  // update is logged, and the worker carries on).
  absl::Status SendUpdate(const twist::v1::UpdateHeader& header,
                          const common::NamedTensors& tensors);
  void SetState(WorkerState state);
  // Sleeps `seconds` in small steps, returning early on Stop() (and, with
  // `or_abandoned`, when the current round is abandoned).
  void SleepUnlessStopped(double seconds, bool or_abandoned = false) const;

  const Options options_;
  // A context for one call: its deadline and the worker's token.
  void Prepare(grpc::ClientContext* context, double deadline_s) const;
  // Stops training the current assignment and cancels the streaming call in
  // flight (the worker was dropped, the round was given up, or Stop()).
  void AbandonCurrent();
  class ActiveCall;
  struct StepsAhead;
  std::shared_ptr<StepsAhead> steps_ahead_;  // null when none are training

  // The channel now (see RenewChannel) and a stub on it.
  std::shared_ptr<grpc::Channel> Channel();
  std::unique_ptr<twist::v1::WorkerService::Stub> Stub();
  // After UNAVAILABLE: a fresh channel, at most once per second.
  void RenewChannel();

  SubnetTrainer* const trainer_;
  const common::Connection connection_;
  absl::Mutex channel_mu_;
  std::shared_ptr<grpc::Channel> channel_ ABSL_GUARDED_BY(channel_mu_);
  std::chrono::steady_clock::time_point renewed_at_
      ABSL_GUARDED_BY(channel_mu_);

  absl::Mutex mu_;
  std::string worker_id_ ABSL_GUARDED_BY(mu_);
  uint64_t incarnation_ ABSL_GUARDED_BY(mu_) = 0;
  double heartbeat_interval_s_ ABSL_GUARDED_BY(mu_) = 1.0;
  bool need_join_ ABSL_GUARDED_BY(mu_) = true;
  WorkerState state_ ABSL_GUARDED_BY(mu_) = WorkerState::kIdle;
  int64_t resident_parameters_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::ClientContext* active_call_ ABSL_GUARDED_BY(mu_) = nullptr;
  int64_t current_job_ ABSL_GUARDED_BY(mu_) = 0;  // the assignment in hand
  int32_t current_round_ ABSL_GUARDED_BY(mu_) = 0;

  std::atomic<bool> stop_{false};
  std::atomic<bool> abandon_{false};
  std::atomic<bool> training_left_running_{false};
  double last_send_s_ = 0;
  // Whether the coordinator took the last update SendUpdate() sent.
  bool last_update_accepted_ = false;
  std::thread heartbeat_;
};

}  // namespace twist::worker

#endif  // TWIST_WORKER_WORKER_CLIENT_H_
