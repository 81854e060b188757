// The coordinator's jobs: the queue (one job runs at a time, in submission
// order), their records in the JobStore, cancellation, watching, export, and
// the board on which the running job publishes its current round. The gRPC and
// HTTP services are thin adapters over this class.
#ifndef TWIST_COORDINATOR_JOB_MANAGER_H_
#define TWIST_COORDINATOR_JOB_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/ist/model_export.h"
#include "common/model/named_tensors.h"
#include "common/model/safetensors.h"
#include "coordinator/job_runner.h"
#include "coordinator/job_store.h"
#include "coordinator/round_board.h"
#include "coordinator/worker_registry.h"
#include "twist/v1/job.pb.h"
#include "twist/v1/worker_service.pb.h"

namespace twist::coordinator {

// A model ready to write as safetensors.
using common::ExportedModel;

class JobManager {
 public:
  struct Options {
    std::string state_dir;  // jobs/<id>/ live under it
    uint64_t incarnation = 0;
    absl::Duration poll_interval = absl::Milliseconds(50);
  };

  // `store` and `registry` must outlive the manager.
  JobManager(Options options, JobStore* store, WorkerRegistry* registry);
  ~JobManager();

  // Queues the unfinished jobs found in the store (oldest first) and starts
  // the scheduler thread.
  absl::Status Start();
  // Interrupts the running job (it stays unfinished) and joins the thread.
  void Stop();

  // Resolves and validates the spec (ResolveJobSpec), stores and queues it.
  absl::StatusOr<twist::v1::Job> Submit(twist::v1::JobSpec spec);
  absl::StatusOr<twist::v1::Job> Get(int64_t job_id, bool include_rounds);
  absl::StatusOr<std::vector<twist::v1::Job>> List();
  // The job's rounds after `after_round`, in order.
  absl::StatusOr<std::vector<twist::v1::RoundRecord>> RoundsAfter(
      int64_t job_id, int32_t after_round);
  // FailedPrecondition for a job that already ended.
  absl::StatusOr<twist::v1::Job> Cancel(int64_t job_id);

  // A counter that grows on every change of any job; WaitForChange blocks
  // until it exceeds `seen` or `timeout` passes, and returns it.
  uint64_t version();
  uint64_t WaitForChange(uint64_t seen, absl::Duration timeout);

  // The job's model (final when finished, current while running), or a
  // random subnetwork at `keep_ratio` (0 or 1: the whole model), its partial
  // sums scaled as the job trained them or, with `shift_correction` (or a
  // job trained with it), its biases shift-corrected on the job's training
  // data (common::ExportModel).
  absl::StatusOr<ExportedModel> Export(int64_t job_id, double keep_ratio,
                                       uint64_t seed,
                                       bool shift_correction = false);

  uint64_t incarnation() const { return options_.incarnation; }
  // The round in progress, where worker updates go.
  RoundBoard* board() { return &board_; }
  // Updates refused because their round was not current.
  int64_t stale_updates() const { return board_.stale_messages(); }
  std::string JobDir(int64_t job_id) const;

 private:
  void SchedulerLoop();
  void Changed();

  const Options options_;
  JobStore* const store_;
  WorkerRegistry* const registry_;

  absl::Mutex mu_;
  std::deque<int64_t> queue_ ABSL_GUARDED_BY(mu_);
  int64_t running_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<JobRunner> runner_ ABSL_GUARDED_BY(mu_);
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  RoundBoard board_;
  std::atomic<bool> cancel_running_{false};
  std::atomic<bool> stop_{false};
  std::thread scheduler_;
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_JOB_MANAGER_H_
