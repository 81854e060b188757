#include "common/job/job_config.h"

namespace twist::common {

using twist::v1::JobSpec;

ModelConfig ModelConfigOf(const JobSpec& spec) {
  const auto& m = spec.model();
  ModelConfig config = ModelConfig::Full(m.n_layer(), m.n_head(), m.n_embd(),
                                         m.block_size(), m.vocab_size());
  config.activation = m.activation() == twist::v1::ACTIVATION_GELU_TANH
                          ? Activation::kGeluTanh
                          : Activation::kGelu;
  const int data_vocab = spec.data().vocab_size();
  if (data_vocab > 0 && data_vocab < m.vocab_size()) {
    config.vocab_used = data_vocab;
  }
  return config;
}

PartialSumScaling ScalingOf(const JobSpec& spec) {
  // The shift correction replaces the scale: its biases carry the missing
  // units' mean instead.
  return spec.scaling() == twist::v1::SCALING_NONE ||
                 spec.scaling() == twist::v1::SCALING_CORRECTION
             ? PartialSumScaling::kNone
             : PartialSumScaling::kInverseKeepRatio;
}

LocalTrainingOptions TrainingOptionsOf(const JobSpec& spec, int32_t round,
                                       int32_t slot) {
  LocalTrainingOptions o;
  o.steps = spec.local_steps();
  o.batch_size = spec.batch_size();
  o.context = spec.model().block_size();
  o.schedule.peak = spec.optimizer().learning_rate();
  o.schedule.min_ratio = spec.optimizer().min_lr_ratio();
  o.schedule.warmup_steps = spec.optimizer().warmup_steps();
  o.schedule.total_steps =
      static_cast<int64_t>(spec.rounds()) * spec.local_steps();
  o.first_global_step = static_cast<int64_t>(round - 1) * spec.local_steps();
  o.weight_decay = spec.optimizer().weight_decay();
  o.beta1 = spec.optimizer().beta1();
  o.beta2 = spec.optimizer().beta2();
  o.grad_clip = spec.optimizer().grad_clip();
  o.compute_dtype = spec.compute_dtype() == twist::v1::COMPUTE_DTYPE_BFLOAT16
                        ? at::kBFloat16
                        : at::kFloat;
  o.job_seed = spec.seed();
  o.round = round;
  o.slot = slot;
  return o;
}

}  // namespace twist::common
