// The work after a round that need not hold up the next one: evaluating the
// model as the round left it, writing its checkpoint, and recording the
// round. It runs on a thread of its own, in round order, so workers train
// round r+1 while round r is evaluated and written. It reads the job's model
// itself, not a copy (a copy would be the model's size in memory again):
// the owner deals round r+1 from the same model meanwhile, and before it
// writes the model (merges round r+1) it waits until the finisher is done
// reading it (AwaitModelRead).
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

  // What a read of the model is given: the module (evaluated), and the
  // parameters and the state a checkpoint holds beside them (shared, not
  // copied).
  using ModelUse = std::function<absl::Status(
      common::GptImpl& model, const common::NamedTensors& params,
      const common::NamedTensors& state)>;
  // Calls `use` with the job's model, under the owner's lock for reading;
  // its status.
  using ModelReader = std::function<absl::Status(const ModelUse& use)>;

  // `val` must outlive the finisher.
  RoundFinisher(const common::TokenFile& val, Options options, Hooks hooks,
                ModelReader reader);
  // Finishes what was submitted, then joins the thread.
  ~RoundFinisher();

  // Queues round `record` (its duration so far; eval_s and val_loss are
  // added). With `evaluate` or `checkpoint` the task reads the model as it
  // is now: the owner must not change it until AwaitModelRead() returns.
  // Returns the first error of earlier work, if any (the job must then fail
  // with it), else OK.
  absl::Status Submit(twist::v1::RoundRecord record, bool evaluate,
                      bool checkpoint);

  // Waits until no submitted task still has to read the model.
  void AwaitModelRead();

  // Evaluates the model now, on the caller's thread (round 0, before
  // training). Waits for earlier work first.
  absl::StatusOr<double> EvaluateNow();

  // Waits until everything submitted is done; the first error, if any.
  absl::Status Drain();

 private:
  struct Task {
    twist::v1::RoundRecord record;
    bool evaluate = false;
    bool checkpoint = false;
  };

  void Loop();
  absl::Status Finish(Task& task);
  absl::StatusOr<double> Evaluate(common::GptImpl& model);

  const Options options_;
  const Hooks hooks_;
  const common::TokenFile& val_;
  const ModelReader reader_;

  absl::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  // Submitted tasks that have yet to read the model.
  int model_reads_ ABSL_GUARDED_BY(mu_) = 0;
  bool working_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_ROUND_FINISHER_H_
