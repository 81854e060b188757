// The round loop of one job (docs/architecture.md, "One round"): evaluate,
// then for each round wait for enough live workers and run the round's steps:
//
//   Plan   which units each live worker holds (coordinator/round_plan.h)
//   Deal   slice every slot's tensors out of the model, put each assignment
//          in its worker's mailbox, publish the round on the RoundBoard
//   Await  updates until every slot ended or the straggler deadline passed;
//          give up on slots whose worker is lost
//   Merge  the delivered updates into the model, in slot order
//   Finish evaluate, checkpoint and record the round, on the RoundFinisher's
//          thread while the next round runs
//
// A round without an accepted update does not count: it is dealt again,
// without the workers that said they cannot train the job, and after
// kMaxEmptyAttempts such attempts the job fails with the workers' reasons.
// It talks to workers only through the WorkerRegistry (mailboxes) and the
// RoundBoard (updates), never through gRPC, so it runs the same in tests. A
// job that ran before resumes from its newest intact checkpoint; one whose
// checkpoints cannot be read fails with the reason and keeps its history.
#ifndef TWIST_COORDINATOR_JOB_RUNNER_H_
#define TWIST_COORDINATOR_JOB_RUNNER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/data/dataset.h"
#include "common/ist/merge.h"
#include "common/ist/optimizer_state.h"
#include "common/ist/shared_view.h"
#include "common/ist/shift_correction.h"
#include "common/ist/tensor_pool.h"
#include "common/model/gpt.h"
#include "common/model/model_config.h"
#include "common/model/named_tensors.h"
#include "coordinator/checkpoint.h"
#include "coordinator/model_state.h"
#include "coordinator/round_board.h"
#include "coordinator/round_collector.h"
#include "coordinator/round_finisher.h"
#include "coordinator/round_merge.h"
#include "coordinator/straggler_deadline.h"
#include "coordinator/worker_registry.h"
#include "coordinator/worker_speeds.h"
#include "twist/v1/job.pb.h"

namespace twist::coordinator {

class JobRunner {
 public:
  // Attempts of one round that may end without an accepted update before
  // the job fails.
  static constexpr int kMaxEmptyAttempts = 3;

  // How the runner reports progress. Called on the runner's thread, or on
  // the finisher's (round_finished, and job_changed after a checkpoint).
  struct Hooks {
    // The job's state, reason, round or checkpoint changed (persist it, tell
    // watchers).
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
  // error when it failed (the job's state is then FAILED with the reason). A
  // LibTorch exception fails the job, not the process.
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
    std::vector<int32_t> local_steps;  // each slot's (LocalStepsPerSlot)
    // How each slot's update travels: with compression, the units it will
    // not hold next round if the same workers are live then, and no codes in
    // the rounds that flush the workers' residuals.
    std::vector<common::UpdateForm> update_forms;
  };

  absl::Status RunRounds(const std::atomic<bool>& cancel,
                         const std::atomic<bool>& stop);
  // Opens the dataset, builds (or resumes) the model and starts the
  // finisher; returns the first round to run.
  absl::StatusOr<int32_t> Start();
  // Evaluates the model before training and records it as round 0.
  absl::Status EvaluateStart();
  // Runs `round` until an attempt merges an update; false when cancelled or
  // stopped first. FailedPrecondition after kMaxEmptyAttempts empty ones.
  absl::StatusOr<bool> RunRound(int32_t round, const std::atomic<bool>& cancel,
                                const std::atomic<bool>& stop);
  // The coordinator is stopping: checkpoints `last_round` (when it is newer
  // than the last checkpoint) so a restart resumes from it.
  absl::Status Interrupt(int32_t last_round);
  // Waits until min_workers are live and able to train this job (not among
  // the refusers); false when cancelled or stopped. Fails the wait (an
  // error) when every live worker refused the job for longer than the
  // straggler floor.
  absl::StatusOr<bool> WaitForWorkers(const std::atomic<bool>& cancel,
                                      const std::atomic<bool>& stop);
  // Runs one attempt of `round`; `accepted` tells how many updates merged.
  absl::Status RunOneRound(int32_t round, const std::atomic<bool>& cancel,
                           const std::atomic<bool>& stop, int* accepted);

  // The steps of a round, in order.
  // Each slot's UpdateForm for round `round` (RoundPlan::update_forms).
  absl::StatusOr<std::vector<common::UpdateForm>> UpdateForms(
      int32_t round, const std::vector<common::SubnetUnits>& units,
      const std::vector<double>& capacities) const;
  absl::StatusOr<RoundPlan> Plan(int32_t round);
  absl::StatusOr<std::shared_ptr<RoundCollector>> Deal(int32_t round,
                                                       const RoundPlan& plan);
  void Await(RoundCollector& collector, double deadline_s,
             const std::atomic<bool>& cancel, const std::atomic<bool>& stop);
  absl::StatusOr<RoundOutcome> Merge(RoundCollector& collector);
  absl::Status Finish(int32_t round, const RoundOutcome& outcome,
                      std::chrono::steady_clock::time_point start,
                      absl::Time handed_out, twist::v1::RoundRecord record);
  // Each accepted worker's idle fraction: 1 - compute_s over the time since
  // its previous accepted update arrived (the round's duration for its
  // first), as RoundWorker.idle_fraction says.
  void SetIdleFractions(absl::Time handed_out,
                        twist::v1::RoundRecord* record);

  // Every slot's assignment tensors (common/ist/slot_payload.h) in the
  // wire's element type, shift-corrected under SCALING_CORRECTION (the
  // shifts go into `shifts`). local_sgd slots share one extraction.
  absl::StatusOr<std::vector<common::NamedTensors>> SliceForSlots(
      const std::vector<common::SubnetUnits>& units,
      std::vector<common::NamedTensors>* shifts)
      ABSL_SHARED_LOCKS_REQUIRED(model_mu_);
  // For a job that ran before (started_at set): loads the newest intact
  // checkpoint, or starts over when the job never had one, and truncates the
  // recorded history to match. FailedPrecondition (nothing truncated) when
  // its checkpoints cannot be listed or read.
  absl::Status Resume();
  // The checkpoint Resume() starts from: nullopt when the job never had one.
  // `skipped` describes newer ones that were unusable.
  absl::StatusOr<std::optional<Checkpoint>> CheckpointToResume(
      int32_t recorded, int32_t rounds_done, std::vector<std::string>* skipped);
  // Each unit's mean contribution on a calibration batch of training data
  // (shift correction).
  absl::StatusOr<common::UnitContributions> Contributions()
      ABSL_SHARED_LOCKS_REQUIRED(model_mu_);
  void SetState(twist::v1::JobState state, const std::string& reason);
  // Refusals of this job by worker id, as "worker NAME on HOST: why".
  std::string DescribeRefusals() const;

  twist::v1::Job job_ ABSL_GUARDED_BY(job_mu_);
  mutable absl::Mutex job_mu_;  // the runner and the finisher both update it
  WorkerRegistry* const registry_;
  RoundBoard* const board_;
  const Options options_;
  const Hooks hooks_;
  const twist::v1::JobSpec spec_;
  const int64_t job_id_;
  const common::ModelConfig config_;
  const at::ScalarType wire_dtype_;
  const common::OuterStep outer_step_;
  std::unique_ptr<common::Dataset> dataset_;
  std::unique_ptr<RoundFinisher> finisher_;
  StragglerDeadline deadline_;
  // The workers' speeds, for quota: learned.
  WorkerSpeeds speeds_;
  // Workers that reported they cannot train this job, with their reasons:
  // they are not dealt its rounds again.
  std::map<std::string, std::string> refusers_;
  // When each worker's last accepted update arrived (idle fractions).
  std::map<std::string, absl::Time> last_update_at_;

  // Guards the model's values: written by the merge, read by the deal and
  // the finisher (evaluation, checkpoints) at the same time.
  mutable absl::Mutex model_mu_;
  std::unique_ptr<ModelState> model_ ABSL_GUARDED_BY(model_mu_);
  // Compressed jobs (but shift correction): what the workers hold, to deal
  // them changes instead of weights (common/ist/shared_view.h). Fresh in
  // every runner: after a restart no worker is resident. Used on the
  // runner's thread only.
  std::unique_ptr<common::SharedView> shared_view_;
  // Memory reused from round to round, so a steady-state round allocates
  // nothing: the slices sent, the updates received, the merge's sums. One
  // pool for all three: a slot's update has its assignment's shapes, so it
  // lands in the tensors its assignment left once streamed.
  common::TensorPool round_pool_;
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_JOB_RUNNER_H_
