// The element type of a worker's forward and backward arithmetic. float32 is
// plain; bfloat16 is mixed precision as torch.autocast does it: the
// parameters, their gradients and the optimizer state stay float32 (master
// weights), and inside the forward pass matrix products cast their inputs to
// bfloat16 while losses and reductions stay float32. The backward pass runs
// outside the autocast region and follows the types the forward recorded.
#ifndef TWIST_COMMON_TRAINING_COMPUTE_DTYPE_H_
#define TWIST_COMMON_TRAINING_COMPUTE_DTYPE_H_

#include <ATen/ATen.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace twist::common {

// Turns autocast on for `device`'s type with `dtype` while it lives, when
// `dtype` is a reduced type (bfloat16); a no-op guard for float32. On leaving
// it restores the previous state and drops the cast weights it cached, so the
// next forward pass sees the weights the optimizer has stepped since.
// Scoped to the calling thread, like LibTorch's autocast state.
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device, at::ScalarType dtype);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  const c10::DeviceType device_;
  const bool active_;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kFloat;
};

// True when a /proc/cpuinfo text lists a bfloat16 unit: AVX-512 BF16
// (avx512_bf16) or AMX (amx_bf16).
bool CpuInfoHasBFloat16(std::string_view cpuinfo);

// OK when `device` computes bfloat16 faster than float32, so that a
// bfloat16 job gains from running there: a CPU that CpuInfoHasBFloat16 (read
// from /proc/cpuinfo), or a CUDA device that multiplies bfloat16 matrices
// (compute capability 8.0 or newer). FailedPrecondition otherwise, saying
// what the device lacks and what to do instead.
absl::Status CheckBFloat16Compute(const c10::Device& device);

}  // namespace twist::common

#endif  // TWIST_COMMON_TRAINING_COMPUTE_DTYPE_H_
