// Activation-shift correction for subnetworks. A sublayer's output is a sum
// over its units plus a bias, y = sum_u W_u a_u + b; a subnetwork that drops
// units M also drops their mean contribution sum_{u in M} E[W_u a_u], which
// shifts the residual stream. Instead of scaling the partial sum by k/m, the
// correction folds that mean into the output bias:
//   y_S = sum_{u in S} W_u a_u + b + sum_{u in M} E[W_u a_u]
// so the subnetwork's output has the full model's mean on the data the
// means were estimated from. Used for pruned exports and, as the scaling mode
// SCALING_CORRECTION, for the subnetworks workers train.
#ifndef TWIST_COMMON_IST_SHIFT_CORRECTION_H_
#define TWIST_COMMON_IST_SHIFT_CORRECTION_H_

#include <torch/torch.h>

#include <vector>

#include "common/ist/subnet.h"
#include "common/model/gpt.h"
#include "common/model/named_tensors.h"

namespace twist::common {

// Mean contribution of every unit to its sublayer's output, per layer.
struct UnitContributions {
  std::vector<torch::Tensor> heads;  // per layer, (H_l, C): E[W_h y_h]
  std::vector<torch::Tensor> ffn;    // per layer, (F_l, C): E[a_j] W[:, j]
};

// Means over every token of `idx` (B, T) with the full model (no gradients).
UnitContributions EstimateUnitContributions(GptImpl& full,
                                            const torch::Tensor& idx);

// The bias shifts of a subnetwork holding `units`: for each layer the sum of
// the missing heads' and columns' contributions, keyed by the output bias it
// is added to ("transformer.h.<l>.attn.c_proj.bias", "...mlp.c_proj.bias").
NamedTensors BiasShifts(const UnitContributions& contributions,
                        const SubnetUnits& units);

// Adds `shifts` to the matching parameters (in place); `sign` -1 removes them.
void ApplyBiasShifts(const NamedTensors& shifts, const NamedTensors& params,
                     double sign = 1.0);

}  // namespace twist::common

#endif  // TWIST_COMMON_IST_SHIFT_CORRECTION_H_
