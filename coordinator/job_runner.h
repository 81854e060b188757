// The round loop of one job (DESIGN.md, "One round"): evaluate, then for each
// round wait for enough live workers, partition, extract, hand the
// subnetworks to the workers' mailboxes, wait for their updates until the
// round deadline, merge them in slot order, evaluate every E rounds, record
// the round. It talks to workers only through the WorkerRegistry and a
// RoundCollector, never through gRPC, so it runs the same in tests. It
// checkpoints every K rounds and when stopped, and a job that ran before
// resumes from its newest intact checkpoint.
#ifndef TWIST_COORDINATOR_JOB_RUNNER_H_
#define TWIST_COORDINATOR_JOB_RUNNER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/dataset.h"
#include "common/gpt.h"
#include "common/model_config.h"
#include "common/named_tensors.h"
#include "common/outer_optimizer.h"
#include "common/shift_correction.h"
#include "common/tensor_pool.h"
#include "coordinator/round_collector.h"
#include "coordinator/worker_registry.h"
#include "twist/v1/job.pb.h"

namespace twist::coordinator {

class JobRunner {
 public:
  // How the runner reports progress; called on the runner's thread.
  struct Hooks {
    // The job's state, reason or round changed (persist it, tell watchers).
    std::function<void(const twist::v1::Job&)> job_changed;
    // A round (or the round-0 evaluation) finished.
    std::function<void(int64_t job_id, const twist::v1::RoundRecord&)>
        round_finished;
    // The collector updates for the current round go to (nullptr between
    // rounds).
    std::function<void(std::shared_ptr<RoundCollector>)> set_current_round;
    // Drop recorded rounds after `keep_up_to` (-1: all) when resuming.
    std::function<absl::Status(int64_t job_id, int32_t keep_up_to)>
        truncate_rounds;
  };

  struct Options {
    uint64_t incarnation = 0;
    std::string job_dir;  // checkpoints and the final model
    int checkpoints_kept = 3;
    absl::Duration poll_interval = absl::Milliseconds(50);
  };

  JobRunner(twist::v1::Job job, WorkerRegistry* registry, Options options,
            Hooks hooks);

  // Runs the job to its end. Returns OK when the job completed, was cancelled
  // (`cancel` set) or interrupted (`stop` set: the job stays unfinished); an
  // error when it failed (the job's state is then FAILED with the reason).
  absl::Status Run(const std::atomic<bool>& cancel,
                   const std::atomic<bool>& stop);

  // A copy of the current full model's parameters (for export while running).
  common::NamedTensors SnapshotParameters() const;
  const common::ModelConfig& config() const { return config_; }

  // The file the final model is written to.
  static std::string ModelPath(const std::string& job_dir);

 private:
  absl::Status RunRounds(const std::atomic<bool>& cancel,
                         const std::atomic<bool>& stop);
  // Waits until min_workers are live; false when cancelled or stopped.
  bool WaitForWorkers(const std::atomic<bool>& cancel,
                      const std::atomic<bool>& stop);
  absl::Status RunOneRound(int32_t round, const std::atomic<bool>& cancel,
                           const std::atomic<bool>& stop);
  absl::StatusOr<double> Evaluate();
  // For a job that ran before (started_at set): loads the newest intact
  // checkpoint, or starts over, and truncates the recorded history to match.
  absl::Status Resume();
  absl::Status SaveCheckpoint();
  // Seconds the current round waits for updates (see JobSpec.deadline_factor).
  double StragglerDeadline() const;
  // Each unit's mean contribution on a calibration batch of training data
  // (shift correction). Requires model_mu_.
  absl::StatusOr<common::UnitContributions> Contributions();
  void SetState(twist::v1::JobState state, const std::string& reason);

  twist::v1::Job job_;
  WorkerRegistry* const registry_;
  const Options options_;
  const Hooks hooks_;
  const common::ModelConfig config_;
  std::unique_ptr<common::Dataset> dataset_;
  int32_t last_checkpoint_round_ = 0;
  std::unique_ptr<common::OuterOptimizer> outer_;
  std::deque<double> recent_seconds_;  // update arrival times, last rounds

  mutable absl::Mutex model_mu_;  // guards the parameter values, not the module
  common::Gpt model_ ABSL_GUARDED_BY(model_mu_){nullptr};
  common::NamedTensors params_ ABSL_GUARDED_BY(model_mu_);
  common::TensorPool slice_pool_;  // each round's slices, reused
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_JOB_RUNNER_H_
