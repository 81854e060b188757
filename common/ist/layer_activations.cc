#include "common/ist/layer_activations.h"

namespace twist::common {

void ForEachLayerActivations(
    GptImpl& model, const torch::Tensor& idx,
    const std::function<void(int, const torch::Tensor&, const torch::Tensor&)>&
        visit) {
  torch::NoGradGuard no_grad;
  const ModelConfig& config = model.config();
  const int64_t T = idx.size(1);
  auto pos = torch::arange(T, torch::dtype(torch::kLong).device(idx.device()));
  auto x = model.transformer->wte->forward(idx) +
           model.transformer->wpe->forward(pos);  // (B, T, C)
  const auto& scales = model.partial_sum_scales();
  for (int l = 0; l < config.n_layer; ++l) {
    auto& block = model.transformer->blocks[l];
    const auto attn_in = block->ln_1->forward(x);
    const torch::Tensor heads = config.n_head[l] > 0
                                    ? block->attn->HeadOutputs(attn_in)
                                    : torch::Tensor();  // (B, H, T, D)
    x = x + block->attn->forward(attn_in, {}, scales.attn[l]);
    const auto mlp_in = block->ln_2->forward(x);
    const torch::Tensor hidden = config.ffn_width[l] > 0
                                     ? block->mlp->Hidden(mlp_in)
                                     : torch::Tensor();  // (B, T, F)
    visit(l, heads, hidden);
    x = x + block->mlp->forward(mlp_in, {}, scales.mlp[l]);
  }
}

}  // namespace twist::common
