#include "common/ist/unit_importance.h"

#include <algorithm>

#include "common/base/status_macros.h"
#include "common/ist/layer_activations.h"
#include "common/ist/partition.h"

namespace twist::common {
namespace {

// The indices of the `keep` largest entries of `scores` (k), increasing.
std::vector<int> Best(const torch::Tensor& scores, int keep) {
  std::vector<int> out;
  if (keep <= 0) return out;
  auto top = std::get<1>(scores.to(torch::kFloat).topk(keep));  // (keep)
  for (int64_t i = 0; i < top.size(0); ++i) {
    out.push_back(static_cast<int>(top[i].item<int64_t>()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

UnitScores MagnitudeScores(GptImpl& model) {
  torch::NoGradGuard no_grad;
  const ModelConfig& config = model.config();
  UnitScores out;
  for (int l = 0; l < config.n_layer; ++l) {
    auto& block = model.transformer->blocks[l];
    const int64_t H = config.n_head[l], D = config.head_dim, C = config.n_embd;
    const auto& qkv = block->attn->c_attn->weight;   // (3*H*D, C)
    const auto& proj = block->attn->c_proj->weight;  // (C, H*D)
    // (3, H, D, C) -> per head; (C, H, D) -> per head.
    auto in = qkv.view({3, H, D, C})
                  .pow(2)
                  .sum(std::vector<int64_t>{0, 2, 3});  // (H)
    auto o =
        proj.view({C, H, D}).pow(2).sum(std::vector<int64_t>{0, 2});  // (H)
    out.heads.push_back(in + o);
    const auto& fc = block->mlp->c_fc->weight;         // (F, C)
    const auto& fc_b = block->mlp->c_fc->bias;         // (F)
    const auto& fc_proj = block->mlp->c_proj->weight;  // (C, F)
    out.ffn.push_back(fc.pow(2).sum(1) + fc_b.pow(2) + fc_proj.pow(2).sum(0));
  }
  return out;
}

UnitScores FluctuationScores(GptImpl& model, const torch::Tensor& idx) {
  model.eval();
  const ModelConfig& config = model.config();
  UnitScores out;
  ForEachLayerActivations(
      model, idx, [&](int l, const torch::Tensor& y, const torch::Tensor& a) {
        auto& block = model.transformer->blocks[l];
        const int64_t H = config.n_head[l], D = config.head_dim,
                      C = config.n_embd;
        if (y.defined()) {
          const auto& proj = block->attn->c_proj->weight;  // (C, H*D)
          auto var = y.var(std::vector<int64_t>{0, 2},
                           /*unbiased=*/false);            // (H, D)
          auto norm = proj.view({C, H, D}).pow(2).sum(0);  // (H, D)
          out.heads.push_back((var * norm).sum(1));        // (H)
        } else {
          out.heads.push_back(torch::zeros({0}));
        }
        if (a.defined()) {
          const auto& fc_proj = block->mlp->c_proj->weight;  // (C, F)
          auto var = a.var(std::vector<int64_t>{0, 1},
                           /*unbiased=*/false);            // (F)
          out.ffn.push_back(var * fc_proj.pow(2).sum(0));  // (F)
        } else {
          out.ffn.push_back(torch::zeros({0}));
        }
      });
  return out;
}

absl::StatusOr<SubnetUnits> TopUnits(const ModelConfig& config,
                                     const UnitScores& scores,
                                     double keep_ratio) {
  SubnetUnits units;
  units.layers.resize(config.n_layer);
  for (int l = 0; l < config.n_layer; ++l) {
    TWIST_ASSIGN_OR_RETURN(
        std::vector<int> heads,
        QuotasFromKeepRatio(config.n_head[l], 1, keep_ratio));
    TWIST_ASSIGN_OR_RETURN(
        std::vector<int> columns,
        QuotasFromKeepRatio(config.ffn_width[l], 1, keep_ratio));
    units.layers[l].heads = Best(scores.heads[l], heads[0]);
    units.layers[l].ffn_columns = Best(scores.ffn[l], columns[0]);
  }
  return units;
}

}  // namespace twist::common
