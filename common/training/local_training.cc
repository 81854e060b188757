#include "common/training/local_training.h"

#include <chrono>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/data/batches.h"
#include "common/training/batch_tensor.h"

namespace twist::common {
absl::StatusOr<LocalTrainingResult> TrainLocalSteps(
    GptImpl& model, const TokenFile& train,
    const LocalTrainingOptions& options) {
  if (options.context > model.config().block_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "context ", options.context, " exceeds the model's block size ",
        model.config().block_size));
  }
  const auto start = std::chrono::steady_clock::now();
  const torch::Device device = model.transformer->wte->weight.device();

  // Weight decay on matrices and embeddings, none on biases and norms.
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : model.parameters())
    (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto adamw = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(
            options.schedule.At(options.first_global_step))
            .betas({options.beta1, options.beta2})
            .eps(1e-8)
            .weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, adamw(options.weight_decay));
  groups.emplace_back(no_decay, adamw(0.0));
  torch::optim::AdamW optimizer(groups);

  model.train();
  std::vector<int64_t> inputs, targets;
  double loss_sum = 0;
  for (int step = 0; step < options.steps; ++step) {
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
    for (auto& group : optimizer.param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    }
    model.zero_grad(/*set_to_none=*/true);  // no memset of every gradient
    auto loss = model.Loss(
        BatchTensor(inputs, options.batch_size, options.context, device),
        BatchTensor(targets, options.batch_size, options.context, device));
    loss.backward();
    if (options.grad_clip > 0) {
      torch::nn::utils::clip_grad_norm_(model.parameters(), options.grad_clip);
    }
    optimizer.step();
    const double value = loss.item<double>();
    if (!std::isfinite(value)) {
      return absl::InternalError(absl::StrCat(
          "training loss became ", value, " at local step ", step, " of round ",
          options.round, ": lower the learning rate"));
    }
    loss_sum += value;
  }
  LocalTrainingResult result;
  result.mean_loss = options.steps > 0 ? loss_sum / options.steps : 0.0;
  result.tokens = static_cast<int64_t>(options.steps) * options.batch_size *
                  options.context;
  result.compute_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return result;
}

}  // namespace twist::common
