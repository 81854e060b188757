#include "common/training/local_training.h"

#include <torch/version.h>

#include <chrono>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/free_memory.h"
#include "common/base/status_macros.h"
#include "common/data/batches.h"
#include "common/training/batch_tensor.h"
#include "common/training/compute_dtype.h"

namespace twist::common {
namespace {

// Models whose parameters take less than this keep their free pages between
// local steps (KeepFreePages). Each step frees and reuses the same blocks; the
// allocator's timed decay counts the growth of free pages, not their reuse,
// and hands many back anyway, so every step faults them in again (a 4x128
// model at context 64, batch 12: 0.11-0.15 s a step with the decay, 0.06 s
// without). A large model keeps the decay: without it, freed blocks of sizes
// its step does not reuse stay resident (GPT-2 small's workers peaked
// 0.5-0.7 GB higher). The worker hands every free page back once a round.
constexpr int64_t kKeepFreePagesBelowBytes = int64_t{64} << 20;

// torch.nn.utils.clip_grad_norm_'s arithmetic (the same as LibTorch's
// clip_grad_norm_) without reading the norm back: on a GPU the step goes on
// without waiting for the device. Every gradient is scaled by
// min(1, max_norm / (norm + 1e-6)), a no-op factor of 1 when within bounds.
void ClipGradNorm(const std::vector<torch::Tensor>& params, double max_norm) {
  std::vector<at::Tensor> grads, norms;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    grads.push_back(p.grad());
    norms.push_back(p.grad().norm(2));
  }
  if (grads.empty()) return;
  const at::Tensor total =
      norms.size() == 1 ? norms[0] : at::stack(norms).norm(2);
  const at::Tensor coef = at::clamp_max(max_norm / (total + 1e-6), 1.0);  // ()
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
  at::_foreach_mul_(grads, coef);
#else
  for (auto& g : grads) g.mul_(coef);
#endif
}

}  // namespace

AdamWOptions AdamWOptionsOf(const LocalTrainingOptions& options) {
  AdamWOptions out;
  out.beta1 = options.beta1;
  out.beta2 = options.beta2;
  out.eps = 1e-8;
  out.weight_decay = options.weight_decay;
  return out;
}

LocalTrainingResult Combined(const LocalTrainingResult& first,
                             const LocalTrainingResult& then) {
  LocalTrainingResult out;
  out.steps = first.steps + then.steps;
  out.mean_loss = out.steps > 0 ? (first.mean_loss * first.steps +
                                   then.mean_loss * then.steps) /
                                      out.steps
                                : 0.0;
  out.tokens = first.tokens + then.tokens;
  out.compute_s = first.compute_s + then.compute_s;
  return out;
}

absl::StatusOr<LocalTrainingResult> TrainLocalSteps(
    GptImpl& model, const TokenFile& train, const LocalTrainingOptions& options,
    AdamW* optimizer) {
  if (options.context > model.config().block_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "context ", options.context, " exceeds the model's block size ",
        model.config().block_size));
  }
  const auto start = std::chrono::steady_clock::now();
  const torch::Device device = model.transformer->wte->weight.device();
  std::unique_ptr<AdamW> fresh;
  if (optimizer == nullptr) {
    const NamedTensors params = ParameterTensors(model);
    fresh = std::make_unique<AdamW>(
        params, std::vector<int64_t>(params.size(), -1),
        AdamWOptionsOf(options));
    optimizer = fresh.get();
  }
  KeepFreePages(model.config().NumParameters() * 4 < kKeepFreePagesBelowBytes);
  model.train();
  std::vector<int64_t> inputs, targets;
  double loss_sum = 0;
  for (int step = options.first_step;
       step < options.first_step + options.steps; ++step) {
    if (options.should_stop && options.should_stop()) {
      return absl::CancelledError(
          absl::StrCat("training of round ", options.round,
                       " stopped at local step ", step));
    }
    TWIST_RETURN_IF_ERROR(SampleBatch(
        train, options.batch_size, options.context,
        BatchSeed(options.job_seed, options.round, options.slot, step), &inputs,
        &targets));
    const double lr = options.schedule.At(options.first_global_step + step);
    model.zero_grad(/*set_to_none=*/true);  // no memset of every gradient
    torch::Tensor loss;
    {
      AutocastGuard autocast(device.type(), options.compute_dtype);
      loss = model.Loss(
          BatchTensor(inputs, options.batch_size, options.context, device),
          BatchTensor(targets, options.batch_size, options.context, device));
    }
    loss.backward();
    if (options.grad_clip > 0) {
      ClipGradNorm(model.parameters(), options.grad_clip);
    }
    optimizer->Step(lr);
    const double value = loss.item<double>();
    if (!std::isfinite(value)) {
      return absl::InternalError(absl::StrCat(
          "training loss became ", value, " at local step ", step, " of round ",
          options.round, ": lower the learning rate"));
    }
    loss_sum += value;
  }
  LocalTrainingResult result;
  result.steps = options.steps;
  result.mean_loss = options.steps > 0 ? loss_sum / options.steps : 0.0;
  result.tokens = static_cast<int64_t>(options.steps) * options.batch_size *
                  options.context;
  result.compute_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return result;
}

}  // namespace twist::common
