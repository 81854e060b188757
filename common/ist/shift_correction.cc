#include "common/ist/shift_correction.h"

#include "absl/strings/str_cat.h"
#include "common/ist/layer_activations.h"

namespace twist::common {

UnitContributions EstimateUnitContributions(GptImpl& full,
                                            const torch::Tensor& idx) {
  const ModelConfig& config = full.config();
  const auto& scales = full.partial_sum_scales();
  UnitContributions out;
  ForEachLayerActivations(
      full, idx, [&](int l, const torch::Tensor& y, const torch::Tensor& a) {
        auto& block = full.transformer->blocks[l];
        const int64_t H = config.n_head[l], D = config.head_dim,
                      C = config.n_embd;
        const auto& proj = block->attn->c_proj->weight;  // (C, H*D)
        if (y.defined()) {
          auto mean_y = y.mean(std::vector<int64_t>{0, 2});  // (H, D)
          // E[W_h y_h] = W_h E[y_h]: per head, (C, D) x (D) -> (C); all
          // heads at once as (H, 1, D) x (H, D, C) -> (H, C).
          auto w = proj.view({C, H, D}).permute({1, 2, 0});  // (H, D, C)
          out.heads.push_back(mean_y.unsqueeze(1).bmm(w).squeeze(1) *
                              scales.attn[l]);
        } else {
          out.heads.push_back(torch::zeros({0, C}, proj.options()));
        }
        const auto& fc_proj = block->mlp->c_proj->weight;  // (C, F)
        if (a.defined()) {
          auto mean_a = a.mean(std::vector<int64_t>{0, 1});  // (F)
          out.ffn.push_back(mean_a.unsqueeze(1) * fc_proj.t() *
                            scales.mlp[l]);  // (F, C)
        } else {
          out.ffn.push_back(torch::zeros({0, C}, fc_proj.options()));
        }
      });
  return out;
}

NamedTensors BiasShifts(const UnitContributions& c, const SubnetUnits& units) {
  NamedTensors out;
  for (size_t l = 0; l < units.layers.size(); ++l) {
    const std::string p = absl::StrCat("transformer.h.", l, ".");
    // Everything minus what the subnetwork holds.
    auto heads = c.heads[l].sum(0);
    for (int h : units.layers[l].heads) heads = heads - c.heads[l][h];
    auto cols = c.ffn[l].sum(0);
    if (!units.layers[l].ffn_columns.empty()) {
      auto held = torch::tensor(
          std::vector<int64_t>(units.layers[l].ffn_columns.begin(),
                               units.layers[l].ffn_columns.end()),
          torch::kLong);
      cols = cols - c.ffn[l].index_select(0, held).sum(0);
    }
    out.Set(p + "attn.c_proj.bias", heads);
    out.Set(p + "mlp.c_proj.bias", cols);
  }
  return out;
}

void ApplyBiasShifts(const NamedTensors& shifts, const NamedTensors& params,
                     double sign) {
  torch::NoGradGuard no_grad;
  for (const auto& [name, shift] : shifts) {
    const at::Tensor* p = params.Find(name);
    if (p != nullptr) p->add_(shift.to(p->options()), sign);
  }
}

}  // namespace twist::common
