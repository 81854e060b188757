// The workers the coordinator knows: who joined, who is live (heartbeating
// within the timeout), and a mailbox per worker through which the round loop
// hands out assignments. No gRPC: the worker service is a thin adapter.
#ifndef TWIST_COORDINATOR_WORKER_REGISTRY_H_
#define TWIST_COORDINATOR_WORKER_REGISTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/model/named_tensors.h"
#include "twist/v1/job.pb.h"
#include "twist/v1/worker_service.pb.h"

namespace twist::coordinator {

// What a worker receives for one round: the header and the subnetwork's
// tensors (CPU, contiguous; possibly shared with other assignments: never
// written after creation).
struct Assignment {
  twist::v1::AssignmentHeader header;
  common::NamedTensors tensors;
};

// Whether a worker is live and, if not, why.
struct Liveness {
  enum class State { kLive, kUnknown, kTimedOut, kLeft };
  State state = State::kUnknown;
  std::string reason;  // e.g. "no heartbeat for 10.2 s (timeout 10.0 s)"

  bool live() const { return state == State::kLive; }
};

class WorkerRegistry {
 public:
  struct Options {
    double heartbeat_interval_s = 1.0;  // told to workers at join
    double heartbeat_timeout_s =
        10.0;  // silence after which a worker is dropped
    // Workers no longer live are forgotten after this long, and beyond this
    // many the oldest are, so that joins cannot grow the registry forever.
    double forget_after_s = 3600;
    int max_departed = 256;
  };

  explicit WorkerRegistry(const Options& options);

  // Registers a worker and returns its id ("w1", "w2", ... in join order).
  std::string Join(const twist::v1::JoinRequest& request,
                   const std::string& address);

  // NotFound when the worker is unknown or was dropped: it must join again.
  absl::Status Heartbeat(const twist::v1::HeartbeatRequest& request);

  // A clean goodbye: the worker is no longer live, recorded as a leave.
  absl::Status Leave(const std::string& worker_id);

  // Live workers in join order (drops any whose heartbeat timed out first).
  std::vector<twist::v1::WorkerInfo> LiveWorkers();
  // Every worker ever seen (live first), for status pages.
  std::vector<twist::v1::WorkerInfo> AllWorkers();

  // Whether the worker is live, and if not why (timed out, left, unknown).
  Liveness Check(const std::string& worker_id);

  // Puts an assignment in the worker's mailbox, replacing any not yet taken.
  void Offer(const std::string& worker_id, std::shared_ptr<const Assignment> a);

  // Waits up to `wait` for an assignment for the worker and takes it;
  // nullptr when none came, or NotFound for an unknown or dropped worker.
  absl::StatusOr<std::shared_ptr<const Assignment>> Take(
      const std::string& worker_id, absl::Duration wait);

  // Withdraws an untaken assignment of (job, round) and, if the worker took it
  // already, tells the worker at its next heartbeat to abandon it.
  void Revoke(const std::string& worker_id, int64_t job_id, int32_t round);

  // The worker's throughput and rounds in its last round.
  void RecordRound(const std::string& worker_id, double tokens_per_s);

  // The worker's answer to its assignment arrived (an update or a refusal):
  // it is idle until it takes the next one, whatever a heartbeat already on
  // its way says.
  void AnswerReceived(const std::string& worker_id);

  const Options& options() const { return options_; }

  // The (job, round) the worker should stop working on, once, if any.
  std::optional<std::pair<int64_t, int32_t>> TakeAbandon(
      const std::string& worker_id);

 private:
  struct Worker {
    twist::v1::WorkerInfo info;
    Liveness liveness;
    std::shared_ptr<const Assignment> mailbox;
    int64_t taken_job = 0;
    int32_t taken_round = 0;
    bool busy = false;     // holds an assignment it has not answered
    bool abandon = false;
    // Steady-clock times: liveness must not jump with the wall clock.
    absl::Time last_heartbeat;  // when the last heartbeat arrived
    absl::Time departed;        // when it stopped being live
  };

  // Marks workers silent for longer than the timeout as dropped, and
  // forgets departed ones (Options::forget_after_s, max_departed).
  void SweepLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  absl::Mutex mu_;
  std::map<std::string, Worker> workers_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_WORKER_REGISTRY_H_
