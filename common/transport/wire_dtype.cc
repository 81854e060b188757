#include "common/transport/wire_dtype.h"

#include "absl/strings/str_cat.h"

namespace twist::common {
namespace {

struct WireType {
  at::ScalarType type;
  twist::v1::DType wire;
};
constexpr WireType kWireTypes[] = {
    {at::kFloat, twist::v1::DTYPE_FLOAT32},
    {at::kDouble, twist::v1::DTYPE_FLOAT64},
    {at::kBFloat16, twist::v1::DTYPE_BFLOAT16},
    {at::kHalf, twist::v1::DTYPE_FLOAT16},
    {at::kLong, twist::v1::DTYPE_INT64},
    {at::kInt, twist::v1::DTYPE_INT32},
    {at::kByte, twist::v1::DTYPE_UINT8},
};

}  // namespace

absl::StatusOr<twist::v1::DType> ToWireDType(at::ScalarType type) {
  for (const auto& w : kWireTypes) {
    if (w.type == type) return w.wire;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("dtype ", c10::toString(type), " cannot be sent"));
}

absl::StatusOr<at::ScalarType> FromWireDType(twist::v1::DType dtype) {
  for (const auto& w : kWireTypes) {
    if (w.wire == dtype) return w.type;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown wire dtype ", static_cast<int>(dtype)));
}

}  // namespace twist::common
