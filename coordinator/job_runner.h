// The round loop of one job (docs/architecture.md, "One round"): evaluate,
// then for each round wait for enough live workers and run the round's steps:
//
//   Plan   which units each live worker holds (coordinator/round_plan.h)
//   Deal   slice every slot's tensors out of the model, put each assignment
//          in its worker's mailbox, publish the round on the RoundBoard
//   Await  updates until every slot ended or the straggler deadline passed;
//          give up on slots whose worker is lost
//   Merge  the delivered updates into the model, in slot order
//   Record the round (evaluating every E rounds)
//
// It talks to workers only through the WorkerRegistry (mailboxes) and the
// RoundBoard (updates), never through gRPC, so it runs the same in tests. It
// checkpoints every K rounds and when stopped, and a job that ran before
// resumes from its newest intact checkpoint.
#ifndef TWIST_COORDINATOR_JOB_RUNNER_H_
#define TWIST_COORDINATOR_JOB_RUNNER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/data/dataset.h"
#include "common/ist/merge.h"
#include "common/ist/shift_correction.h"
#include "common/ist/tensor_pool.h"
#include "common/model/gpt.h"
#include "common/model/model_config.h"
#include "common/model/named_tensors.h"
#include "coordinator/round_board.h"
#include "coordinator/round_collector.h"
#include "coordinator/round_merge.h"
#include "coordinator/straggler_deadline.h"
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

  // `registry` and `board` must outlive the runner.
  JobRunner(twist::v1::Job job, WorkerRegistry* registry, RoundBoard* board,
            Options options, Hooks hooks);

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
  // Who takes part in a round and which units each holds (one per slot).
  struct RoundPlan {
    std::vector<twist::v1::WorkerInfo> workers;
    std::vector<common::SubnetUnits> units;
  };

  absl::Status RunRounds(const std::atomic<bool>& cancel,
                         const std::atomic<bool>& stop);
  // Waits until min_workers are live; false when cancelled or stopped.
  bool WaitForWorkers(const std::atomic<bool>& cancel,
                      const std::atomic<bool>& stop);
  absl::Status RunOneRound(int32_t round, const std::atomic<bool>& cancel,
                           const std::atomic<bool>& stop);

  // The steps of a round, in order.
  absl::StatusOr<RoundPlan> Plan(int32_t round);
  absl::StatusOr<std::shared_ptr<RoundCollector>> Deal(int32_t round,
                                                       const RoundPlan& plan);
  void Await(RoundCollector& collector, double deadline_s,
             const std::atomic<bool>& cancel, const std::atomic<bool>& stop);
  absl::StatusOr<RoundOutcome> Merge(RoundCollector& collector);
  absl::Status Record(int32_t round, const RoundOutcome& outcome,
                      std::chrono::steady_clock::time_point start,
                      twist::v1::RoundRecord record);

  // Every slot's tensors in the wire's element type, shift-corrected under
  // SCALING_CORRECTION (the shifts go into `shifts`). local_sgd slots share
  // one extraction. Requires model_mu_.
  absl::StatusOr<std::vector<common::NamedTensors>> SliceForSlots(
      const std::vector<common::SubnetUnits>& units,
      std::vector<common::NamedTensors>* shifts)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(model_mu_);
  absl::StatusOr<double> Evaluate();
  // For a job that ran before (started_at set): loads the newest intact
  // checkpoint, or starts over, and truncates the recorded history to match.
  absl::Status Resume();
  absl::Status SaveCheckpoint();
  // Each unit's mean contribution on a calibration batch of training data
  // (shift correction). Requires model_mu_.
  absl::StatusOr<common::UnitContributions> Contributions()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(model_mu_);
  void SetState(twist::v1::JobState state, const std::string& reason);

  twist::v1::Job job_;
  WorkerRegistry* const registry_;
  RoundBoard* const board_;
  const Options options_;
  const Hooks hooks_;
  const common::ModelConfig config_;
  const at::ScalarType wire_dtype_;
  const common::OuterStep outer_step_;
  std::unique_ptr<common::Dataset> dataset_;
  int32_t last_checkpoint_round_ = 0;
  StragglerDeadline deadline_;

  mutable absl::Mutex model_mu_;  // guards the parameter values, not the module
  common::Gpt model_ ABSL_GUARDED_BY(model_mu_){nullptr};
  common::NamedTensors params_ ABSL_GUARDED_BY(model_mu_);
  // The outer optimizer's momentum per parameter (empty without momentum).
  common::NamedTensors velocity_ ABSL_GUARDED_BY(model_mu_);
  // Memory reused from round to round, so a steady-state round allocates
  // nothing: the slices sent, the updates received, the merge's sums.
  common::TensorPool slice_pool_;
  common::TensorPool update_pool_;
  common::TensorPool merge_pool_;
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_JOB_RUNNER_H_
