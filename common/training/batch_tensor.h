// A batch of token ids as the model takes it.
#ifndef TWIST_COMMON_TRAINING_BATCH_TENSOR_H_
#define TWIST_COMMON_TRAINING_BATCH_TENSOR_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace twist::common {

// `values` (B * T ids, row-major) as a (B, T) int64 tensor on `device` (a
// copy: `values` may be reused at once).
torch::Tensor BatchTensor(const std::vector<int64_t>& values, int batch,
                          int context, const torch::Device& device);

}  // namespace twist::common

#endif  // TWIST_COMMON_TRAINING_BATCH_TENSOR_H_
