// Merging returned subnetworks into the full model (docs/architecture.md,
// "The merge rule"): the one merge of the project.
//
// For each partitioned unit, d = mean_w(theta_w - theta) over the workers
// that held it and returned an accepted update; for each replicated tensor
// the same over every accepted update. The outer optimizer (DiLoCo) then
// steps theta with the pseudo-gradient g = -d:
//   learning rate 1, momentum 0 (the default, plain IST):  theta <- theta + d
//   otherwise:  v <- mu v + g;  theta <- theta - lr (Nesterov ? g + mu v : v)
// The velocity is stored in bfloat16 (kVelocityType: half the bytes of a
// float32 model's); each round's step uses it before it is rounded.
// A unit or tensor without contributors keeps its value and its velocity.
// With no training every d is exactly zero, so extract-then-merge gives the
// full model back bit for bit.
#ifndef TWIST_COMMON_IST_MERGE_H_
#define TWIST_COMMON_IST_MERGE_H_

#include <vector>

#include "absl/status/status.h"
#include "common/ist/slice_kernels.h"
#include "common/ist/subnet.h"
#include "common/ist/tensor_pool.h"
#include "common/model/model_config.h"
#include "common/model/named_tensors.h"

namespace twist::common {

// The element type of the outer step's velocity.
inline constexpr at::ScalarType kVelocityType = at::kBFloat16;

// One worker's returned subnetwork.
struct SliceUpdate {
  const SubnetUnits* units = nullptr;
  // The subnetwork's tensors in its shapes (model order), in the model's
  // element type or bfloat16.
  const NamedTensors* tensors = nullptr;
  // Trained-minus-received changes (reduced-precision transport), not
  // trained weights.
  bool is_delta = false;
};

// OK when `update` is a well-formed update for its units of the model whose
// parameters are `full_params`: every parameter present with the
// subnetwork's shape, all in the model's element type or all in bfloat16
// (deltas only), and finite (CheckFinite). InvalidArgument naming the
// tensor otherwise.
absl::Status ValidateUpdate(const ModelConfig& full,
                            const NamedTensors& full_params,
                            const SliceUpdate& update);

// Merges `updates` (in their order, which fixes the floating-point sums) into
// `params` in place through `step`, tensors in parallel on LibTorch's
// threads (each tensor on one thread: the same bytes for any thread count). `velocity` holds the outer momentum per
// parameter; it is used (and missing entries created as zeros of
// kVelocityType) only when step.momentum != 0; entries in the model's own
// type are used as they are. Scratch sums of shared positions come from `scratch`
// (may be null: fresh memory). The updates must be valid (ValidateUpdate);
// InvalidArgument, before anything is written, for units or shapes that do
// not fit, or a model the kernels do not support (CPU float32/float64).
absl::Status MergeUpdates(const ModelConfig& full, const NamedTensors& params,
                          const std::vector<SliceUpdate>& updates,
                          const OuterStep& step, NamedTensors* velocity,
                          TensorPool* scratch = nullptr);

}  // namespace twist::common

#endif  // TWIST_COMMON_IST_MERGE_H_
