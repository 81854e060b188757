// What a worker does with its subnetwork in a round: L local steps of AdamW
// on batches drawn from its copy of the training data. No networking: the
// worker daemon, the in-process reference of the determinism test and the
// benchmarks all call this.
#ifndef TWIST_COMMON_TRAINING_LOCAL_TRAINING_H_
#define TWIST_COMMON_TRAINING_LOCAL_TRAINING_H_

#include <torch/torch.h>

#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "common/data/token_file.h"
#include "common/model/gpt.h"
#include "common/training/adamw.h"
#include "common/training/lr_schedule.h"

namespace twist::common {

struct LocalTrainingOptions {
  int steps = 20;       // how many steps to take now: L, or part of it
  // The round's local step the first of them is (batches and schedule): a
  // round split in two (overlap_steps) takes its steps 0..k-1, then k..L-1.
  int first_step = 0;
  int batch_size = 16;  // B
  int context = 128;    // T, at most the model's block_size
  LrSchedule schedule;
  int64_t first_global_step = 0;  // (round - 1) * L
  double weight_decay = 0.1;      // on matrices and embeddings only
  double beta1 = 0.9;
  double beta2 = 0.95;
  double grad_clip = 1.0;  // <= 0 disables clipping
  // The forward pass's arithmetic: float32, or bfloat16 under autocast with
  // float32 master weights (common/training/compute_dtype.h).
  at::ScalarType compute_dtype = at::kFloat;
  // Batches are drawn with BatchSeed(job_seed, round, slot, step).
  uint64_t job_seed = 1;
  int64_t round = 1;
  int64_t slot = 0;
  // Polled before every step; training stops with Cancelled when it returns
  // true (the worker is shutting down or the round was abandoned).
  std::function<bool()> should_stop;
};

struct LocalTrainingResult {
  int steps = 0;
  double mean_loss = 0;  // over the local steps
  int64_t tokens = 0;    // B * T * steps
  double compute_s = 0;
};

// The result of `first`'s steps followed by `then`'s (one round trained in
// two parts).
LocalTrainingResult Combined(const LocalTrainingResult& first,
                             const LocalTrainingResult& then);

// The AdamW settings of `options`.
AdamWOptions AdamWOptionsOf(const LocalTrainingOptions& options);

// Trains `model` in place (it must already be on its device) for
// options.steps steps of `optimizer`, whose parameters are the model's (its
// state goes on from wherever it stands: fresh, or carried over from earlier
// rounds). Without an optimizer, one with fresh moments is made for these
// steps. Cancelled when should_stop says so. FailedPrecondition when the
// training data is shorter than one context; InvalidArgument for a context
// beyond the model's block size; Internal when the loss becomes NaN.
absl::StatusOr<LocalTrainingResult> TrainLocalSteps(
    GptImpl& model, const TokenFile& train, const LocalTrainingOptions& options,
    AdamW* optimizer = nullptr);

}  // namespace twist::common

#endif  // TWIST_COMMON_TRAINING_LOCAL_TRAINING_H_
