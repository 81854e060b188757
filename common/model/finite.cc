#include "common/model/finite.h"

#include <ATen/ATen.h>

#include <cmath>

#include "absl/strings/str_cat.h"

namespace twist::common {
namespace {

// The received bytes are still in cache when they are checked, so the loop
// is bound by instructions, not memory: compiled for AVX2 too, and the
// loader picks the variant the machine supports.
__attribute__((target_clones("avx2", "default"))) bool NoFloatExponentAllOnes(
    const uint32_t* p, int64_t count) {
  uint32_t bad = 0;
  for (int64_t i = 0; i < count; ++i)
    bad |= (p[i] & 0x7f800000u) == 0x7f800000u;
  return bad == 0;
}

__attribute__((target_clones("avx2", "default"))) bool NoHalfExponentAllOnes(
    const uint16_t* p, int64_t count, uint16_t exponent) {
  uint16_t bad = 0;
  for (int64_t i = 0; i < count; ++i) bad |= (p[i] & exponent) == exponent;
  return bad == 0;
}

bool NoDoubleExponentAllOnes(const uint64_t* p, int64_t count) {
  uint64_t bad = 0;
  for (int64_t i = 0; i < count; ++i) {
    bad |= (p[i] & 0x7ff0000000000000ull) == 0x7ff0000000000000ull;
  }
  return bad == 0;
}

}  // namespace

bool AllFinite(const void* data, int64_t count, at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return NoFloatExponentAllOnes(static_cast<const uint32_t*>(data), count);
    case at::kBFloat16:
      return NoHalfExponentAllOnes(static_cast<const uint16_t*>(data), count,
                                   0x7f80u);
    case at::kHalf:
      return NoHalfExponentAllOnes(static_cast<const uint16_t*>(data), count,
                                   0x7c00u);
    case at::kDouble:
      return NoDoubleExponentAllOnes(static_cast<const uint64_t*>(data), count);
    default:
      return true;
  }
}

bool AllFinite(const at::Tensor& tensor) {
  if (tensor.device().is_cpu() && tensor.is_contiguous()) {
    return AllFinite(tensor.data_ptr(), tensor.numel(), tensor.scalar_type());
  }
  return at::isfinite(tensor).all().item<bool>();
}

absl::Status CheckFinite(const NamedTensors& tensors) {
  for (const auto& [name, tensor] : tensors) {
    if (!AllFinite(tensor)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", name, "' holds NaN or infinite values"));
    }
  }
  return absl::OkStatus();
}

}  // namespace twist::common
