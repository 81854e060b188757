// Structured post-training pruning: scores for every head and FFN column of a
// trained model, and the subnetwork of the best-scored units. The baseline a
// TwIST subnetwork ("golden ticket") is compared with: a plainly trained
// model pruned to the same size by the best criterion.
//
// Two criteria, per layer (every layer keeps the same share of its units, as
// a TwIST subnetwork does):
//   magnitude     the squared norm of every weight that belongs to the unit:
//                 a head's rows of c_attn (q, k, v) and columns of c_proj; a
//                 column's row of c_fc and column of c_proj (+ its bias).
//   fluctuation   FLAP's metric (An et al. 2024): for each input dimension d
//                 of the output projection W, Var[x_d] * ||W[:, d]||^2 on
//                 calibration tokens, summed over the unit's dimensions (a
//                 head's D outputs, a column's one). What it removes is the
//                 variation around the mean; the mean itself is restored by
//                 the shift correction (common/ist/shift_correction.h), FLAP's
//                 bias compensation.
#ifndef TWIST_COMMON_IST_UNIT_IMPORTANCE_H_
#define TWIST_COMMON_IST_UNIT_IMPORTANCE_H_

#include <torch/torch.h>

#include <vector>

#include "absl/status/statusor.h"
#include "common/ist/subnet.h"
#include "common/model/gpt.h"

namespace twist::common {

struct UnitScores {
  std::vector<torch::Tensor> heads;  // per layer, (H_l); higher is kept
  std::vector<torch::Tensor> ffn;    // per layer, (F_l)
};

UnitScores MagnitudeScores(GptImpl& model);

// On calibration tokens `idx` (B, T), without gradients.
UnitScores FluctuationScores(GptImpl& model, const torch::Tensor& idx);

// Per layer, the round(keep_ratio * k) best-scored heads and columns (at
// least one each; the counts RandomSubnet keeps), in increasing order.
absl::StatusOr<SubnetUnits> TopUnits(const ModelConfig& config,
                                     const UnitScores& scores,
                                     double keep_ratio);

}  // namespace twist::common

#endif  // TWIST_COMMON_IST_UNIT_IMPORTANCE_H_
