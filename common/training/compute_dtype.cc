#include "common/training/compute_dtype.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace twist::common {
namespace {

// LibTorch 2.4 made autocast's switches per device type; 1.13 (Debian's)
// has one pair of functions per backend.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool AutocastEnabled(c10::DeviceType d) {
  return at::autocast::is_autocast_enabled(d);
}
void SetAutocastEnabled(c10::DeviceType d, bool on) {
  at::autocast::set_autocast_enabled(d, on);
}
at::ScalarType AutocastDtype(c10::DeviceType d) {
  return at::autocast::get_autocast_dtype(d);
}
void SetAutocastDtype(c10::DeviceType d, at::ScalarType t) {
  at::autocast::set_autocast_dtype(d, t);
}
#else
bool AutocastEnabled(c10::DeviceType d) {
  return d == c10::DeviceType::CUDA ? at::autocast::is_enabled()
                                    : at::autocast::is_cpu_enabled();
}
void SetAutocastEnabled(c10::DeviceType d, bool on) {
  if (d == c10::DeviceType::CUDA) {
    at::autocast::set_enabled(on);
  } else {
    at::autocast::set_cpu_enabled(on);
  }
}
at::ScalarType AutocastDtype(c10::DeviceType d) {
  return d == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                    : at::autocast::get_autocast_cpu_dtype();
}
void SetAutocastDtype(c10::DeviceType d, at::ScalarType t) {
  if (d == c10::DeviceType::CUDA) {
    at::autocast::set_autocast_gpu_dtype(t);
  } else {
    at::autocast::set_autocast_cpu_dtype(t);
  }
}
#endif

}  // namespace

AutocastGuard::AutocastGuard(c10::DeviceType device, at::ScalarType dtype)
    : device_(device), active_(dtype != at::kFloat) {
  if (!active_) return;
  was_enabled_ = AutocastEnabled(device_);
  was_dtype_ = AutocastDtype(device_);
  SetAutocastDtype(device_, dtype);
  SetAutocastEnabled(device_, true);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  SetAutocastEnabled(device_, was_enabled_);
  SetAutocastDtype(device_, was_dtype_);
  // The outermost region drops the cached bfloat16 copies of the weights, as
  // torch.autocast's exit does: the optimizer changes the weights in place.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
}

bool CpuInfoHasBFloat16(std::string_view cpuinfo) {
  for (std::string_view flag : {"avx512_bf16", "amx_bf16"}) {
    size_t at = 0;
    while ((at = cpuinfo.find(flag, at)) != std::string_view::npos) {
      const size_t end = at + flag.size();
      const bool starts = at == 0 || cpuinfo[at - 1] == ' ' ||
                          cpuinfo[at - 1] == '\t';
      const bool ends = end == cpuinfo.size() || cpuinfo[end] == ' ' ||
                        cpuinfo[end] == '\n';
      if (starts && ends) return true;
      at = end;
    }
  }
  return false;
}

absl::Status CheckBFloat16Compute(const c10::Device& device) {
  if (device.is_cpu()) {
    std::ifstream in("/proc/cpuinfo");
    std::stringstream text;
    text << in.rdbuf();
    if (CpuInfoHasBFloat16(text.str())) return absl::OkStatus();
    return absl::FailedPreconditionError(
        "compute_dtype bfloat16 needs bfloat16 units (AVX-512 BF16 or AMX) "
        "and this CPU has neither (no avx512_bf16 or amx_bf16 in "
        "/proc/cpuinfo), so bfloat16 would be slower than float32 here: "
        "submit the job with compute_dtype float32, or run it on workers "
        "that have them");
  }
  if (device.is_cuda()) {
    // cuBLAS multiplies bfloat16 matrices from compute capability 8.0 on;
    // below it the product fails, which is the test.
    try {
      const auto options = at::TensorOptions().device(device).dtype(at::kBFloat16);
      const at::Tensor a = at::ones({16, 16}, options);
      const double sum = a.mm(a).sum().item<double>();
      if (sum == 16.0 * 16 * 16) return absl::OkStatus();
    } catch (const c10::Error&) {
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "compute_dtype bfloat16 needs a CUDA device of compute capability 8.0 "
        "or newer, and ", device.str(),
        " cannot multiply bfloat16 matrices: submit the job with "
        "compute_dtype float32, or run it on workers that can"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "compute_dtype bfloat16 is not supported on device ", device.str()));
}

}  // namespace twist::common
