#include "common/merge.h"

#include <torch/torch.h>

#include <optional>

#include "absl/strings/str_cat.h"
#include "common/model_io.h"
#include "common/status_macros.h"

namespace twist::common {
namespace {

// Shape that broadcasts a per-row or per-column count along `dim` of a
// tensor with `rank` dimensions.
std::vector<int64_t> BroadcastShape(int64_t dim, int64_t rank) {
  std::vector<int64_t> shape(rank, 1);
  shape[dim] = -1;
  return shape;
}

}  // namespace

SubnetMerger::SubnetMerger(const ModelConfig& full,
                           const NamedTensors& full_params)
    : full_(full), full_params_(full_params) {
  const SubnetUnits everything = AllUnits(full);
  for (const auto& [name, theta] : full_params_) {
    sums_.Set(name, torch::zeros_like(theta));
    auto rule = SliceRuleFor(full_, everything, name);
    if (rule.ok() && rule->has_value()) {
      const int64_t dim = (*rule)->dim;
      slice_dims_[name] = dim;
      counts_.Set(name, torch::zeros({theta.size(dim)}, theta.options()));
    } else {
      counts_.Set(name, torch::zeros({}, theta.options()));
    }
  }
}

absl::Status SubnetMerger::AddWeights(const SubnetUnits& units,
                                      const NamedTensors& subnet_params) {
  return Add(units, subnet_params, /*are_deltas=*/false);
}

absl::Status SubnetMerger::AddDeltas(const SubnetUnits& units,
                                     const NamedTensors& subnet_deltas) {
  return Add(units, subnet_deltas, /*are_deltas=*/true);
}

absl::Status SubnetMerger::Add(const SubnetUnits& units,
                               const NamedTensors& tensors, bool are_deltas) {
  TWIST_RETURN_IF_ERROR(ValidateUnits(full_, units));
  TWIST_RETURN_IF_ERROR(
      CheckParameterShapes(SubnetConfig(full_, units), tensors));
  torch::NoGradGuard no_grad;
  // Check every tensor before touching the sums: accept whole or reject whole.
  for (const auto& [name, tensor] : tensors) {
    const at::Tensor& theta = *full_params_.Find(name);
    if (tensor.scalar_type() != theta.scalar_type()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", name, "' has dtype ", c10::toString(tensor.scalar_type()),
          ", expected ", c10::toString(theta.scalar_type())));
    }
    if (!torch::isfinite(tensor).all().item<bool>()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", name, "' holds NaN or infinite values"));
    }
  }
  for (const auto& [name, theta] : full_params_) {
    const at::Tensor update = tensors.Find(name)->to(theta.device());
    at::Tensor& sum = *sums_.Find(name);
    at::Tensor& count = *counts_.Find(name);
    auto it = slice_dims_.find(name);
    if (it == slice_dims_.end()) {
      sum.add_(are_deltas ? update : update - theta);
      count.add_(1);
      continue;
    }
    TWIST_ASSIGN_OR_RETURN(std::optional<SliceRule> rule,
                           SliceRuleFor(full_, units, name));
    auto index = torch::tensor(rule->index, torch::dtype(torch::kLong))
                     .to(theta.device());
    const at::Tensor delta =
        are_deltas ? update : update - theta.index_select(rule->dim, index);
    sum.index_add_(rule->dim, index, delta);
    count.index_add_(0, index, torch::ones({index.size(0)}, count.options()));
  }
  ++num_accepted_;
  return absl::OkStatus();
}

MergedDelta SubnetMerger::Finish() const {
  torch::NoGradGuard no_grad;
  MergedDelta out;
  out.num_updates = num_accepted_;
  for (const auto& [name, sum] : sums_) {
    const at::Tensor& count = *counts_.Find(name);
    auto it = slice_dims_.find(name);
    const at::Tensor divisor =
        it == slice_dims_.end()
            ? count.clamp_min(1)
            : count.clamp_min(1).view(BroadcastShape(it->second, sum.dim()));
    out.mean_delta.Set(name, sum / divisor);
    out.contributors.Set(name, count.clone());
  }
  return out;
}

void ApplyMergedDelta(const MergedDelta& merged,
                      const NamedTensors& full_params) {
  torch::NoGradGuard no_grad;
  for (const auto& [name, theta] : full_params) {
    theta.add_(*merged.mean_delta.Find(name));
  }
}

}  // namespace twist::common
