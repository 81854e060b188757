// The inner loops of slicing and merging: gathering a subnetwork's rows or
// columns out of a full tensor, and writing merged updates back, directly on
// the tensors' memory. One pass over the bytes that move, without the per-row
// operator dispatch of index_select / index_add_ (which made the coordinator's
// merge 10-100x slower than a memcpy of the same bytes).
//
// Full tensors are contiguous CPU float32 or float64. Slices and updates are
// contiguous CPU tensors of the full tensor's type or bfloat16 (the reduced-
// precision transport): the kernels narrow (round to nearest even, as
// Tensor::to) and widen (exactly) as they copy, so there is no conversion pass
// of their own. `index` lists positions along `dim` (0: rows, 1: columns of a
// matrix; a 1-D tensor has only dim 0).
#ifndef TWIST_COMMON_IST_SLICE_KERNELS_H_
#define TWIST_COMMON_IST_SLICE_KERNELS_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace twist::common {

// The instruction sets the kernels are compiled for. On x86-64 (GCC) the
// kernels exist for each, and the widest the CPU runs is used: the merge is
// bound by its arithmetic more than by memory (round_overhead_bench
// --kernels compares them). The arithmetic is the same IEEE operations in
// every set, with no fused multiply-add, so the bytes are the same too.
enum class KernelIsa { kGeneric, kAvx2, kAvx512 };

// The sets this build has kernels for and this CPU runs, narrowest first.
std::vector<KernelIsa> SupportedKernelIsas();

// The set the kernels use: the widest supported, unless UseKernelIsa chose.
KernelIsa ActiveKernelIsa();

// Uses `isa` from now on, in every thread; false (and no change) when it is
// not supported.
bool UseKernelIsa(KernelIsa isa);

// "generic", "avx2" or "avx512", for logs.
const char* KernelIsaName(KernelIsa isa);

// True when `full` can be sliced and merged by these kernels with slices or
// updates of element type `slice_type`.
bool KernelSupports(const at::Tensor& full, at::ScalarType slice_type);

// out_k = full.index_select(dim, *indices[k]) for every k, in one pass over
// `full`: the outer loop runs over the full tensor's rows and every slice
// takes its part of a row while the row is in cache (column slices of a
// matrix would otherwise pull every row from memory once per worker). Each
// `outs[k]` already has its slice's shape.
void GatherSlices(const at::Tensor& full, int64_t dim,
                  const std::vector<const std::vector<int64_t>*>& indices,
                  const std::vector<at::Tensor>& outs);

// How a position's merged change d = mean over its holders of (update -
// theta) is applied (the outer optimizer; DiLoCo's with g = -d):
//   plain (learning_rate 1, momentum 0):  theta = theta + d
//   no momentum:                          theta = theta + d * lr
//   momentum mu:   v = v * mu + g;  theta = theta - (Nesterov ? g + v * mu : v)
//   * lr
struct OuterStep {
  double learning_rate = 1.0;
  double momentum = 0.0;
  bool nesterov = true;

  bool plain() const { return learning_rate == 1.0 && momentum == 0.0; }
};

// Positions along the merged dimension are merged in tiles of at most this
// many bytes of one outer row, so that a tile of the full tensor and of its
// shared sums stays in cache while every update merges its part of it.
constexpr int64_t kMergeTileBytes = 128 << 10;

// The elements of MergeSlices' scratch for `full` merged along `dim`: one
// tile (a row of single elements along `dim` is one tile).
int64_t SumElements(const at::Tensor& full, int64_t dim,
                    int64_t tile_bytes = kMergeTileBytes);

// Merges `updates` of one tensor into `full` in one pass over its rows,
// tile by tile. `count[a]` is the number of updates holding position `a`
// along `dim`. Positions held once get their step at once; shared positions
// accumulate their changes in `sum` in the order of `updates`, then get
// their step with d = sum / count. `sum` is scratch for one tile
// (SumElements(full, dim, tile_bytes)), reused tile after tile; undefined
// when no count exceeds 1. The result does not depend on `tile_bytes`.
// `is_delta[k]`: update k holds trained-minus-received changes rather than
// trained weights. `velocity` (full's shape, in full's type or bfloat16) is read
// and written only with momentum; undefined otherwise.
void MergeSlices(const at::Tensor& full, int64_t dim,
                 const std::vector<const std::vector<int64_t>*>& indices,
                 const std::vector<at::Tensor>& updates,
                 const std::vector<bool>& is_delta,
                 const std::vector<int32_t>& count, const at::Tensor& sum,
                 const OuterStep& step, const at::Tensor& velocity,
                 int64_t tile_bytes = kMergeTileBytes);

}  // namespace twist::common

#endif  // TWIST_COMMON_IST_SLICE_KERNELS_H_
