// Runs jobs in one process, through the coordinator's own round loop
// (JobRunner with its WorkerRegistry and RoundBoard) and the workers' own
// training (SubnetTrainer), with each worker a thread instead of a process
// and no gRPC in between. The determinism test shows a round over gRPC gives
// the same model bit for bit, so the learning-quality benchmarks use this to
// run many jobs cheaply, and the coordinator's tests use it to run jobs in
// seconds, with workers that refuse, straggle or never answer, and jobs that
// stop after a round and resume.
#ifndef TWIST_TESTS_SUPPORT_IN_PROCESS_CLUSTER_H_
#define TWIST_TESTS_SUPPORT_IN_PROCESS_CLUSTER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/round_board.h"
#include "coordinator/worker_registry.h"
#include "twist/v1/job.pb.h"

namespace twist::testing {

// How one in-process worker answers its assignments.
struct WorkerBehaviour {
  enum class Mode {
    kTrain,   // trains and delivers its update
    kRefuse,  // reports that it cannot train the job (RoundCollector::Refuse)
    kSilent,  // takes every assignment and never answers
  };
  Mode mode = Mode::kTrain;
  // A refusal reaches the round as "worker could not train: <reason>", as
  // the worker service words it.
  std::string refuse_reason = "the dataset is missing on this worker";
  // Sleeps this long after taking each assignment before answering it (a
  // straggler). The sleep ends early when the workers stop.
  double delay_s = 0;
  // Takes its first `silent_first` assignments without answering them.
  int silent_first = 0;
  double capacity = 1.0;
  std::string name;  // "sim-<index>" when empty
  // From round `slow_from_round` on, trains `slowdown` times as slowly as it
  // can (a slower machine): it waits (slowdown - 1) times its compute time
  // after training and reports the whole as its compute time.
  double slowdown = 1;
  int32_t slow_from_round = 0;
};

// What one worker did, for the tests' checks.
struct WorkerLog {
  std::string id;  // the registry's ("w1", ...)
  // (round, slot) of every assignment taken, in order.
  std::vector<std::pair<int32_t, int32_t>> taken;
  int delivered = 0;  // updates the round accepted
  int refused = 0;    // refusals the round recorded
  // Answers the round did not take (it had moved on, or the slot had ended),
  // as their errors.
  std::vector<absl::Status> late;
};

// Worker threads that take assignments from `registry` and answer through
// `board`, one per behaviour, joined to the registry in order (ids w1, w2,
// ... in a fresh registry). Both must outlive the workers.
class InProcessWorkers {
 public:
  InProcessWorkers(coordinator::WorkerRegistry* registry,
                   coordinator::RoundBoard* board,
                   std::vector<WorkerBehaviour> behaviours);
  // Stop()s.
  ~InProcessWorkers();
  InProcessWorkers(const InProcessWorkers&) = delete;
  InProcessWorkers& operator=(const InProcessWorkers&) = delete;

  // Stops and joins the threads (an assignment being trained is finished
  // first) and has the workers leave the registry; idempotent.
  void Stop();

  // Assignments for rounds after `round` are taken and never answered
  // (0: every round is answered); `on_ignored` (may be empty) is called with
  // the round of each, on the worker's thread. Used to stop a job after a
  // round without a race: the round after it cannot finish before the job
  // is stopped.
  void IgnoreRoundsAfter(int32_t round,
                         std::function<void(int32_t round)> on_ignored = {});

  int size() const { return static_cast<int>(ids_.size()); }
  const std::vector<std::string>& ids() const { return ids_; }
  WorkerLog log(int worker);

 private:
  void Loop(int worker);
  // Answers an assignment with a refusal; its outcome goes to the log.
  void Refuse(int worker, const twist::v1::AssignmentHeader& a,
              const std::string& reason);

  coordinator::WorkerRegistry* const registry_;
  coordinator::RoundBoard* const board_;
  const std::vector<WorkerBehaviour> behaviours_;
  std::vector<std::string> ids_;
  std::atomic<bool> done_{false};
  absl::Mutex mu_;
  int32_t ignore_after_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<void(int32_t)> on_ignored_ ABSL_GUARDED_BY(mu_);
  std::vector<WorkerLog> logs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

// One run of a JobRunner and what its hooks reported.
struct JobRun {
  // The job's record as a job store would hold it after the run: the latest
  // job_changed, with its round set by round_finished and truncate_rounds.
  // Pass it to Resume to run the job again from where it stopped.
  twist::v1::Job job;
  // The recorded rounds (round 0 is the evaluation before training), as a
  // store keeps them: a round recorded again replaces the later ones, and
  // truncate_rounds drops those after the checkpoint resumed from.
  std::vector<twist::v1::RoundRecord> rounds;
  absl::Status status;     // what JobRunner::Run returned
  std::string model_path;  // JobRunner::ModelPath(work_dir): a completed job's
  double wall_s = 0;

  bool completed() const {
    return job.state() == twist::v1::JOB_STATE_COMPLETED;
  }
};

struct JobRunOptions {
  std::string work_dir;  // the job's folder: checkpoints and the final model
  // > 0: the job stops right after round `stop_after_round`, as when the
  // coordinator shuts down: the workers leave later rounds unanswered, and
  // the runner's stop flag is set once that round is recorded
  // (round_finished) and the next one dealt. (Stopping sooner, while the
  // runner may still be between merging a round and checking the flag,
  // would be a race.)
  int32_t stop_after_round = 0;
  // With stop_after_round: set the stop flag as soon as the round is
  // recorded, not waiting for the next round's deal. That races with the
  // runner, which may still be between merging the round and checking the
  // flag: a coordinator stopped at an arbitrary moment.
  bool stop_at_once = false;
  int checkpoints_kept = 3;
  // Set to cancel the job (may be null).
  const std::atomic<bool>* cancel = nullptr;
};

// A coordinator's round loop with in-process workers: a registry (whose
// heartbeats never time out: threads do not heartbeat), a round board and
// the workers. Jobs run one at a time on the caller's thread.
class InProcessCluster {
 public:
  struct Options {
    std::vector<WorkerBehaviour> workers;
    // A coordinator restart is a new incarnation: workers drop what they
    // kept of an older one's jobs.
    uint64_t incarnation = 1;
    absl::Duration poll_interval = absl::Milliseconds(5);
  };

  explicit InProcessCluster(Options options);
  ~InProcessCluster();

  // A fresh job record (QUEUED) for a resolved spec (ResolveJobSpec).
  static twist::v1::Job NewJob(const twist::v1::JobSpec& resolved,
                               int64_t id = 1);

  // Runs `job` (a fresh record, or JobRun::job of an earlier run to resume
  // it) to its end. `history` is the rounds recorded before, which the
  // runner's truncate_rounds trims on resume.
  JobRun Run(const twist::v1::Job& job, const JobRunOptions& options,
             std::vector<twist::v1::RoundRecord> history = {});
  // Runs `previous.job` again in `options.work_dir` (that of the earlier
  // run): a JobRunner resuming it, on top of the earlier run's history.
  JobRun Resume(const JobRun& previous, const JobRunOptions& options) {
    return Run(previous.job, options, previous.rounds);
  }

  coordinator::WorkerRegistry& registry() { return registry_; }
  coordinator::RoundBoard& board() { return board_; }
  InProcessWorkers& workers() { return *workers_; }

 private:
  const Options options_;
  coordinator::WorkerRegistry registry_;
  coordinator::RoundBoard board_;
  std::unique_ptr<InProcessWorkers> workers_;
};

// Writes a synthetic English-like corpus of about `bytes` into `dir` and
// prepares it with the byte tokenizer into dir/data, in process. Returns the
// dataset folder.
absl::StatusOr<std::string> PrepareSyntheticDatasetInProcess(
    const std::string& dir, size_t bytes, uint64_t seed = 1);

// A job small enough to run in well under a second on one core: one layer
// of two heads over C=32, T=32, three rounds of two local steps of four
// sequences, evaluated every round on two batches, no checkpoints, one
// worker needed. Not resolved (ResolveJobSpec fills the vocabulary).
twist::v1::JobSpec TinyJobSpec(const std::string& data_path);

// The benchmarks' one-call form: resolves `spec` and runs it with `workers`
// training workers; the final model is written into `work_dir`. Workers
// train with one intra-op thread each (call common::ConfigureThreads(1)
// first). An error when the job did not complete.
struct InProcessJob {
  twist::v1::JobSpec spec;  // resolved
  std::vector<twist::v1::RoundRecord> rounds;
  std::string model_path;  // the final model (safetensors)
  double wall_s = 0;
};
absl::StatusOr<InProcessJob> RunJobInProcess(const twist::v1::JobSpec& spec,
                                             int workers,
                                             const std::string& work_dir);

}  // namespace twist::testing

#endif  // TWIST_TESTS_SUPPORT_IN_PROCESS_CLUSTER_H_
