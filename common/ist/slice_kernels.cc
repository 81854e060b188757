#include "common/ist/slice_kernels.h"

#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <type_traits>

// The kernels for each instruction set (slice_kernels_body.inc). The wider
// sets are compiled with GCC's target pragma on x86-64; elsewhere, and with
// other compilers, only the generic kernels exist. AVX-512F has fused
// multiply-adds of its own, and the target pragma brings back GCC's default
// of fusing them (whatever -ffp-contract says), so each wider set turns it
// off again: a fused multiply-add rounds once where the generic kernels
// round twice, and the bytes would depend on the machine.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TWIST_X86_KERNELS 1
#endif

#define TWIST_KERNEL_ISA generic_kernels
#include "common/ist/slice_kernels_body.inc"
#undef TWIST_KERNEL_ISA

#if defined(TWIST_X86_KERNELS)
#pragma GCC push_options
#pragma GCC target("avx2")
#pragma GCC optimize("fp-contract=off")
#define TWIST_KERNEL_ISA avx2_kernels
#include "common/ist/slice_kernels_body.inc"
#undef TWIST_KERNEL_ISA
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq")
#pragma GCC optimize("fp-contract=off")
#define TWIST_KERNEL_ISA avx512_kernels
#include "common/ist/slice_kernels_body.inc"
#undef TWIST_KERNEL_ISA
#pragma GCC pop_options
#endif

namespace twist::common {
namespace {

bool Runs(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kGeneric:
      return true;
#if defined(TWIST_X86_KERNELS)
    case KernelIsa::kAvx2:
      return __builtin_cpu_supports("avx2");
    case KernelIsa::kAvx512:
      return __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512dq");
#endif
    default:
      return false;
  }
}

std::atomic<KernelIsa>& Active() {
  static std::atomic<KernelIsa> active{SupportedKernelIsas().back()};
  return active;
}

}  // namespace

std::vector<KernelIsa> SupportedKernelIsas() {
  std::vector<KernelIsa> out;
  for (KernelIsa isa :
       {KernelIsa::kGeneric, KernelIsa::kAvx2, KernelIsa::kAvx512}) {
    if (Runs(isa)) out.push_back(isa);
  }
  return out;
}

KernelIsa ActiveKernelIsa() { return Active().load(); }

bool UseKernelIsa(KernelIsa isa) {
  if (!Runs(isa)) return false;
  Active().store(isa);
  return true;
}

const char* KernelIsaName(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kGeneric:
      return "generic";
    case KernelIsa::kAvx2:
      return "avx2";
    case KernelIsa::kAvx512:
      return "avx512";
  }
  return "unknown";
}

bool KernelSupports(const at::Tensor& full, at::ScalarType slice_type) {
  const bool full_ok =
      full.device().is_cpu() && full.is_contiguous() &&
      (full.scalar_type() == at::kFloat || full.scalar_type() == at::kDouble);
  return full_ok &&
         (slice_type == full.scalar_type() || slice_type == at::kBFloat16);
}

void GatherSlices(const at::Tensor& full, int64_t dim,
                  const std::vector<const std::vector<int64_t>*>& indices,
                  const std::vector<at::Tensor>& outs) {
  switch (ActiveKernelIsa()) {
#if defined(TWIST_X86_KERNELS)
    case KernelIsa::kAvx512:
      return avx512_kernels::GatherSlices(full, dim, indices, outs);
    case KernelIsa::kAvx2:
      return avx2_kernels::GatherSlices(full, dim, indices, outs);
#endif
    default:
      return generic_kernels::GatherSlices(full, dim, indices, outs);
  }
}

int64_t SumElements(const at::Tensor& full, int64_t dim, int64_t tile_bytes) {
  return generic_kernels::SumElements(full, dim, tile_bytes);
}

void MergeSlices(const at::Tensor& full, int64_t dim,
                 const std::vector<const std::vector<int64_t>*>& indices,
                 const std::vector<at::Tensor>& updates,
                 const std::vector<bool>& is_delta,
                 const std::vector<int32_t>& count, const at::Tensor& sum,
                 const OuterStep& step, const at::Tensor& velocity,
                 int64_t tile_bytes) {
  switch (ActiveKernelIsa()) {
#if defined(TWIST_X86_KERNELS)
    case KernelIsa::kAvx512:
      return avx512_kernels::MergeSlices(full, dim, indices, updates, is_delta,
                                         count, sum, step, velocity,
                                         tile_bytes);
    case KernelIsa::kAvx2:
      return avx2_kernels::MergeSlices(full, dim, indices, updates, is_delta,
                                       count, sum, step, velocity, tile_bytes);
#endif
    default:
      return generic_kernels::MergeSlices(full, dim, indices, updates, is_delta,
                                          count, sum, step, velocity,
                                          tile_bytes);
  }
}

}  // namespace twist::common
