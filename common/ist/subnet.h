// Subnetworks of a full model: which units a worker holds, the shape that
// gives, and slicing the worker's tensors out of the full model.
//
// Units of layer l are its H_l attention heads and its F_l FFN columns. A
// subnetwork with heads S and columns J takes (docs/architecture.md,
// "Slicing and scaling"):
//
//   attn.c_attn.weight (3*H*D, C)  rows of each head in S in the q, k, v blocks
//   attn.c_attn.bias   (3*H*D)     the same entries
//   attn.c_proj.weight (C, H*D)    columns of the heads in S
//   mlp.c_fc.weight    (F, C)      rows J          mlp.c_fc.bias (F): entries J
//   mlp.c_proj.weight  (C, F)      columns J
//   everything else                whole (replicated)
//
// Units are listed in ascending id, and a slice keeps that order.
#ifndef TWIST_COMMON_IST_SUBNET_H_
#define TWIST_COMMON_IST_SUBNET_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/ist/tensor_pool.h"
#include "common/model/gpt.h"
#include "common/model/model_config.h"
#include "common/model/named_tensors.h"

namespace twist::common {

struct LayerUnits {
  std::vector<int> heads;        // ascending head ids in [0, H_l)
  std::vector<int> ffn_columns;  // ascending column ids in [0, F_l)

  bool operator==(const LayerUnits& o) const {
    return heads == o.heads && ffn_columns == o.ffn_columns;
  }
};

// The units one worker holds, one entry per layer of the full model.
struct SubnetUnits {
  std::vector<LayerUnits> layers;

  bool operator==(const SubnetUnits& o) const { return layers == o.layers; }
};

// How a subnetwork's partial sums are scaled (docs/architecture.md, "Slicing
// and scaling"): by the inverse keep ratio k_l / m_l of that layer and kind,
// so a random subnetwork matches the full model in expectation, or not at all.
enum class PartialSumScaling { kInverseKeepRatio, kNone };

// Every unit of the full model (the whole model as a "subnetwork").
SubnetUnits AllUnits(const ModelConfig& full);

// InvalidArgument unless `units` has one entry per layer, with ids ascending,
// distinct and in range.
absl::Status ValidateUnits(const ModelConfig& full, const SubnetUnits& units);

// The subnetwork's shape: the full shape with |S_l| heads and |J_l| columns.
ModelConfig SubnetConfig(const ModelConfig& full, const SubnetUnits& units);

// Scales for the subnetwork's sublayers. A sublayer with no units gets 1 (it
// outputs only its bias, so the scale is never used).
PartialSumScales ScalesFor(const ModelConfig& full, const SubnetUnits& units,
                           PartialSumScaling scaling);

// 0/1 masks of the units in `units`, in the full model's shapes.
UnitMasks MasksFor(const ModelConfig& full, const SubnetUnits& units,
                   const torch::TensorOptions& options);

// Where a partitioned tensor's subnetwork slice comes from: positions `index`
// along dimension `dim` of the full tensor, in subnetwork order.
struct SliceRule {
  int64_t dim = 0;
  std::vector<int64_t> index;
};

// The slice rule of the named parameter, std::nullopt for a replicated one.
// InvalidArgument for a name that is not a parameter of `full`.
absl::StatusOr<std::optional<SliceRule>> SliceRuleFor(const ModelConfig& full,
                                                      const SubnetUnits& units,
                                                      const std::string& name);

// For each position of `to` along the rule's dimension, its place in `from`,
// or -1 when `from` does not hold it.
std::vector<int64_t> PlacesIn(const SliceRule& from, const SliceRule& to);

// Positions as a long tensor on `device`, for index_select and index_copy_.
at::Tensor IndexTensor(const std::vector<int64_t>& index,
                       const at::Device& device = at::kCPU);

// `t` gathered along `dim` at `places`, zero where a place is -1.
at::Tensor GatherOrZero(const at::Tensor& t, int64_t dim,
                        const std::vector<int64_t>& places);

// `t`, a tensor of the named parameter's subnetwork shape for the units
// `from` (the parameter itself, a moment, a residual), laid out for the units
// `to`: positions both hold are copied, the rest are zero. A replicated
// parameter's tensor comes back as it is (shared). InvalidArgument for an
// unknown name or a tensor that does not fit `from`.
absl::StatusOr<at::Tensor> CarryAlongUnits(const ModelConfig& full,
                                           const SubnetUnits& from,
                                           const SubnetUnits& to,
                                           const std::string& name,
                                           const at::Tensor& t);

// The units of `units` that `other` does not hold, per layer and kind.
SubnetUnits UnitsNotIn(const SubnetUnits& units, const SubnetUnits& other);

// Every slot's tensors, sliced (copied) out of the full model's parameters in
// the full model's order, in one pass over each full tensor for all slots
// (GatherSlices). Element k of the result is slot k's tensors, of element
// type `dtype` (the model's, or bfloat16: narrowed as they are copied).
// Replicated tensors are copied too, so the result never aliases
// `full_params`. With a `pool`, the slices go into its tensors where it has
// free ones of the right shape (the last round's, once released) instead of
// new memory. The tensors are copied on at::parallel_for's threads, a
// tensor's slices by one (ForEachBalanced); the bytes do not depend on the
// thread count. Errors: invalid units, a missing parameter, a parameter whose
// shape does not match `full`, a model the kernels do not support (CPU
// float32/float64).
absl::StatusOr<std::vector<NamedTensors>> ExtractSubnets(
    const ModelConfig& full, const NamedTensors& full_params,
    const std::vector<SubnetUnits>& slots, at::ScalarType dtype,
    TensorPool* pool = nullptr);

// A subnetwork model built from extracted tensors (copied into its
// parameters), with partial-sum scales set for `scaling`.
absl::StatusOr<Gpt> BuildSubnetModel(const ModelConfig& full,
                                     const SubnetUnits& units,
                                     const NamedTensors& subnet_params,
                                     PartialSumScaling scaling);

}  // namespace twist::common

#endif  // TWIST_COMMON_IST_SUBNET_H_
