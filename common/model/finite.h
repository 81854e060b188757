// NaN and infinity checks on tensor memory: every update is checked before
// it may touch the model. One read of the bytes, as a vectorised bit test
// for float32 and bfloat16 (a value is NaN or infinite exactly when its
// exponent bits are all ones).
#ifndef TWIST_COMMON_MODEL_FINITE_H_
#define TWIST_COMMON_MODEL_FINITE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "absl/status/status.h"
#include "common/model/named_tensors.h"

namespace twist::common {

// True when none of the `count` elements of type `type` at `data` is NaN or
// infinite. Element types other than floating point are always finite.
bool AllFinite(const void* data, int64_t count, at::ScalarType type);

// The same for a whole tensor (any device, any layout).
bool AllFinite(const at::Tensor& tensor);

// InvalidArgument naming the first tensor holding a NaN or infinite value.
absl::Status CheckFinite(const NamedTensors& tensors);

}  // namespace twist::common

#endif  // TWIST_COMMON_MODEL_FINITE_H_
