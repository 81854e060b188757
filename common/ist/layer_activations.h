// One pass of the full model over calibration tokens that shows each layer's
// unit activations to a visitor: what the shift correction and the
// structured-pruning scores estimate their statistics from.
#ifndef TWIST_COMMON_IST_LAYER_ACTIVATIONS_H_
#define TWIST_COMMON_IST_LAYER_ACTIVATIONS_H_

#include <torch/torch.h>

#include <functional>

#include "common/model/gpt.h"

namespace twist::common {

// Runs `model` on `idx` (B, T) without gradients and calls `visit` once per
// layer l with the attention heads' outputs before the output projection,
// (B, H_l, T, D), and the FFN's activations, (B, T, F_l); either is undefined
// when the layer has no such units.
void ForEachLayerActivations(
    GptImpl& model, const torch::Tensor& idx,
    const std::function<void(int layer, const torch::Tensor& head_outputs,
                             const torch::Tensor& hidden)>& visit);

}  // namespace twist::common

#endif  // TWIST_COMMON_IST_LAYER_ACTIVATIONS_H_
