// The work after a round that need not hold up the next one: evaluating the
// model as the round left it, writing its checkpoint, and recording the
// round. It runs on a thread of its own, in round order, from a snapshot of
// the parameters, so workers train round r+1 while round r is evaluated and
// written. At most one snapshot exists at a time (the model's size in
// memory, once): a round that needs one waits for the previous one to be
// done with it.
#ifndef TWIST_COORDINATOR_ROUND_FINISHER_H_
#define TWIST_COORDINATOR_ROUND_FINISHER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/data/token_file.h"
#include "common/model/gpt.h"
#include "common/model/model_config.h"
#include "common/model/named_tensors.h"
#include "twist/v1/job.pb.h"

namespace twist::coordinator {

class RoundFinisher {
 public:
  struct Options {
    int eval_batches = 8;
    int batch_size = 16;
    std::string job_dir;  // checkpoints
    int checkpoints_kept = 3;
  };
  // Called on the finisher's thread, in round order: a round is finished
  // (evaluated when asked), and a checkpoint of round `round` is on disk.
  struct Hooks {
    std::function<void(const twist::v1::RoundRecord&)> round_finished;
    std::function<void(int32_t round)> checkpoint_written;
  };

  // `val` must outlive the finisher.
  RoundFinisher(const common::ModelConfig& config, const common::TokenFile& val,
                Options options, Hooks hooks);
  // Finishes what was submitted, then joins the thread.
  ~RoundFinisher();

  // Queues round `record` (its duration so far; eval_s and val_loss are
  // added). With `evaluate` or `checkpoint`, `snapshot` is called (on the
  // caller's thread, under the caller's locks) with the tensors to copy the
  // parameters and the outer optimizer's state into, once the previous
  // snapshot is free. Returns the first error of earlier work, if any (the
  // job must then fail with it), else OK.
  absl::Status Submit(
      twist::v1::RoundRecord record, bool evaluate, bool checkpoint,
      const std::function<void(const common::NamedTensors& params,
                               common::NamedTensors* state)>& snapshot);

  // Evaluates the model `snapshot` fills in, now, on the caller's thread
  // (round 0, before training). Waits for earlier work first.
  absl::StatusOr<double> EvaluateNow(
      const std::function<void(const common::NamedTensors& params)>& snapshot);

  // Waits until everything submitted is done; the first error, if any.
  absl::Status Drain();

  // The snapshot model (valid after Drain()), e.g. to save the final model.
  common::GptImpl& snapshot_model() { return *model_; }

 private:
  struct Task {
    twist::v1::RoundRecord record;
    bool evaluate = false;
    bool checkpoint = false;
  };

  void Loop();
  absl::Status Finish(Task& task);
  absl::StatusOr<double> Evaluate();

  const Options options_;
  const Hooks hooks_;
  const common::TokenFile& val_;
  // The snapshot: a model of its own whose parameters the snapshot fills.
  common::Gpt model_;
  common::NamedTensors params_;  // model_'s parameters
  common::NamedTensors state_;   // the outer optimizer's, for checkpoints

  absl::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  bool snapshot_busy_ ABSL_GUARDED_BY(mu_) = false;
  bool working_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_ROUND_FINISHER_H_
