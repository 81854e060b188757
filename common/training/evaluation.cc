#include "common/training/evaluation.h"

#include <vector>

#include "common/base/status_macros.h"
#include "common/data/batches.h"
#include "common/training/batch_tensor.h"

namespace twist::common {

absl::StatusOr<double> EvaluateLoss(GptImpl& model, const TokenFile& val,
                                    int batches, int batch_size, int context) {
  torch::NoGradGuard no_grad;
  model.eval();
  const torch::Device device = model.transformer->wte->weight.device();
  std::vector<int64_t> inputs, targets;
  double sum = 0;
  for (int b = 0; b < batches; ++b) {
    TWIST_RETURN_IF_ERROR(
        EvalBatch(val, batch_size, context, b, &inputs, &targets));
    sum += model
               .Loss(BatchTensor(inputs, batch_size, context, device),
                     BatchTensor(targets, batch_size, context, device))
               .item<double>();
  }
  return batches > 0 ? sum / batches : 0.0;
}

absl::StatusOr<torch::Tensor> CalibrationTokens(const TokenFile& train,
                                                int batches, int batch_size,
                                                int context) {
  std::vector<int64_t> all, inputs, targets;
  for (int b = 0; b < batches; ++b) {
    TWIST_RETURN_IF_ERROR(
        EvalBatch(train, batch_size, context, b, &inputs, &targets));
    all.insert(all.end(), inputs.begin(), inputs.end());
  }
  return torch::tensor(all, torch::kLong).view({batches * batch_size, context});
}

}  // namespace twist::common
