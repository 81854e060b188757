// Element types on the wire (twist.v1.DType) and LibTorch's, both ways.
#ifndef TWIST_COMMON_TRANSPORT_WIRE_DTYPE_H_
#define TWIST_COMMON_TRANSPORT_WIRE_DTYPE_H_

#include <c10/core/ScalarType.h>

#include "absl/status/statusor.h"
#include "twist/v1/tensor.pb.h"

namespace twist::common {

// InvalidArgument for element types the wire does not carry.
absl::StatusOr<twist::v1::DType> ToWireDType(at::ScalarType type);
absl::StatusOr<at::ScalarType> FromWireDType(twist::v1::DType dtype);

}  // namespace twist::common

#endif  // TWIST_COMMON_TRANSPORT_WIRE_DTYPE_H_
