// The inner loops of slicing and merging: gathering a subnetwork's rows or
// columns out of a full tensor, and writing merged updates back, directly on
// the tensors' memory. One pass over the bytes that move, without the per-row
// operator dispatch of index_select / index_add_ (which made the coordinator's
// merge 10-100x slower than a memcpy of the same bytes).
//
// All tensors are contiguous CPU tensors of one floating-point type; `index`
// lists positions along `dim` (0: rows, 1: columns of a matrix; a 1-D tensor
// has only dim 0).
#ifndef TWIST_COMMON_SLICE_KERNELS_H_
#define TWIST_COMMON_SLICE_KERNELS_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace twist::common {

// True when the kernels below handle `t` (contiguous CPU float or double).
bool KernelSupports(const at::Tensor& t);

// out = full.index_select(dim, index); `out` already has the slice's shape.
void GatherSlice(const at::Tensor& full, int64_t dim,
                 const std::vector<int64_t>& index, const at::Tensor& out);

// GatherSlice for several slices of one tensor in a single pass over it:
// the outer loop runs over the full tensor's rows and every slice takes its
// part of a row while the row is in cache. Column slices of a matrix would
// otherwise pull every row from memory once per worker.
void GatherSlices(const at::Tensor& full, int64_t dim,
                  const std::vector<const std::vector<int64_t>*>& indices,
                  const std::vector<at::Tensor>& outs);

// For positions with `count[i] == 1` (exactly one contributor):
//   full[i] = full[i] + (update - full[i])     (weights; deltas: full[i] +
//   update)
// and for positions with a larger count:
//   sum[i] += update - full[i]                  (or += update for deltas)
// where i runs over index (along dim) and the slice's elements. `count` has
// one entry per position along `dim` of `full`; `sum` has full's shape and is
// only touched where count > 1 (it may be undefined when no count is).
void MergeSlice(const at::Tensor& full, int64_t dim,
                const std::vector<int64_t>& index, const at::Tensor& update,
                bool is_delta, const std::vector<int32_t>& count,
                const at::Tensor& sum);

// MergeSlice for several updates of one tensor, in one pass over its rows
// (see GatherSlices); updates are applied in order within each row, so the
// sums are the same as merging them one after another.
void MergeSlices(const at::Tensor& full, int64_t dim,
                 const std::vector<const std::vector<int64_t>*>& indices,
                 const std::vector<at::Tensor>& updates,
                 const std::vector<bool>& is_delta,
                 const std::vector<int32_t>& count, const at::Tensor& sum);

// full[i] += sum[i] / count[i] wherever count > 1 (positions along dim).
void ApplySums(const at::Tensor& full, int64_t dim,
               const std::vector<int32_t>& count, const at::Tensor& sum);

}  // namespace twist::common

#endif  // TWIST_COMMON_SLICE_KERNELS_H_
