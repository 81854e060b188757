#include "common/training/batch_tensor.h"

namespace twist::common {

torch::Tensor BatchTensor(const std::vector<int64_t>& values, int batch,
                          int context, const torch::Device& device) {
  return torch::from_blob(const_cast<int64_t*>(values.data()), {batch, context},
                          torch::kLong)
      .to(device, /*non_blocking=*/false, /*copy=*/true);  // (B, T)
}

}  // namespace twist::common
