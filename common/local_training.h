// What a worker does with its subnetwork in a round, and how the coordinator
// evaluates the full model: the learning-rate schedule, L local steps of AdamW
// on batches drawn from the worker's copy of the training data, and the mean
// validation loss over fixed batches. No networking: the worker daemon, the
// in-process reference of the determinism test and the benchmarks all call
// these functions.
#ifndef TWIST_COMMON_LOCAL_TRAINING_H_
#define TWIST_COMMON_LOCAL_TRAINING_H_

#include <torch/torch.h>

#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "common/dataset.h"
#include "common/gpt.h"

namespace twist::common {

// Linear warm-up to `peak` over `warmup_steps`, then cosine decay to
// peak * min_ratio at `total_steps` (nanoGPT's schedule). One schedule spans
// the whole job (R * L global steps) in every mode, so modes compare step for
// step.
struct LrSchedule {
  double peak = 1e-3;
  double min_ratio = 0.1;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  // Learning rate at global step `step` (0-based).
  double At(int64_t step) const;
};

struct LocalTrainingOptions {
  int steps = 20;       // L
  int batch_size = 16;  // B
  int context = 128;    // T, at most the model's block_size
  LrSchedule schedule;
  int64_t first_global_step = 0;  // (round - 1) * L
  double weight_decay = 0.1;      // on matrices and embeddings only
  double beta1 = 0.9;
  double beta2 = 0.95;
  double grad_clip = 1.0;  // <= 0 disables clipping
  // Batches are drawn with BatchSeed(job_seed, round, slot, step).
  uint64_t job_seed = 1;
  int64_t round = 1;
  int64_t slot = 0;
  // Polled before every step; training stops with Cancelled when it returns
  // true (the worker is shutting down or the round was abandoned).
  std::function<bool()> should_stop;
};

struct LocalTrainingResult {
  double mean_loss = 0;  // over the local steps
  int64_t tokens = 0;    // B * T * L
  double compute_s = 0;
};

// Trains `model` in place (it must already be on its device) for
// options.steps AdamW steps with fresh moments. Cancelled when should_stop
// says so. FailedPrecondition when the
// training data is shorter than one context; InvalidArgument for a context
// beyond the model's block size; Internal when the loss becomes NaN.
absl::StatusOr<LocalTrainingResult> TrainLocalSteps(
    GptImpl& model, const TokenFile& train,
    const LocalTrainingOptions& options);

// Mean cross-entropy (nats per token) over `batches` fixed evaluation batches
// of the validation data (EvalBatch), without gradients.
absl::StatusOr<double> EvaluateLoss(GptImpl& model, const TokenFile& val,
                                    int batches, int batch_size, int context);

}  // namespace twist::common

#endif  // TWIST_COMMON_LOCAL_TRAINING_H_
