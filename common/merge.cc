#include "common/merge.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/model_io.h"
#include "common/slice_kernels.h"
#include "common/status_macros.h"

namespace twist::common {
namespace {

// True when no element is NaN or infinite; one read of the tensor.
bool AllFinite(const at::Tensor& t) {
  if (t.device().is_cpu() && t.is_contiguous() &&
      t.scalar_type() == at::kFloat) {
    // A float is NaN or infinite exactly when its exponent bits are all ones;
    // as an integer test the loop vectorises (std::isfinite's does not).
    const auto* p = static_cast<const uint32_t*>(t.data_ptr());
    uint32_t bad = 0;
    for (int64_t i = 0, n = t.numel(); i < n; ++i)
      bad |= (p[i] & 0x7f800000u) == 0x7f800000u;
    return bad == 0;
  }
  return torch::isfinite(t).all().item<bool>();
}

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

absl::Status ValidateUpdate(const ModelConfig& full,
                            const NamedTensors& full_params,
                            const SubnetUnits& units,
                            const NamedTensors& tensors) {
  TWIST_RETURN_IF_ERROR(ValidateUnits(full, units));
  TWIST_RETURN_IF_ERROR(
      CheckParameterShapes(SubnetConfig(full, units), tensors));
  for (const auto& [name, tensor] : tensors) {
    const at::Tensor& theta = *full_params.Find(name);
    if (tensor.scalar_type() != theta.scalar_type()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", name, "' has dtype ", c10::toString(tensor.scalar_type()),
          ", expected ", c10::toString(theta.scalar_type())));
    }
    if (!AllFinite(tensor)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", name, "' holds NaN or infinite values"));
    }
  }
  return absl::OkStatus();
}

absl::Status SubnetMerger::Add(const SubnetUnits& units,
                               const NamedTensors& tensors, bool are_deltas) {
  // Check every tensor before touching the sums: accept whole or reject whole.
  TWIST_RETURN_IF_ERROR(ValidateUpdate(full_, full_params_, units, tensors));
  torch::NoGradGuard no_grad;
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
    out.contributors.Set(
        name, it == slice_dims_.end()
                  ? count.clone()
                  : count.view(BroadcastShape(it->second, sum.dim())).clone());
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

std::vector<absl::Status> MergeInPlace(
    const ModelConfig& full, const NamedTensors& full_params,
    const std::vector<UpdateToMerge>& updates) {
  torch::NoGradGuard no_grad;
  std::vector<absl::Status> statuses;
  std::vector<const UpdateToMerge*> accepted;
  bool kernels = true;
  for (const auto& [name, theta] : full_params)
    kernels &= KernelSupports(theta);
  for (const UpdateToMerge& u : updates) {
    statuses.push_back(ValidateUpdate(full, full_params, *u.units, *u.tensors));
    if (statuses.back().ok()) {
      accepted.push_back(&u);
      for (const auto& [name, t] : *u.tensors) kernels &= KernelSupports(t);
    }
  }
  if (accepted.empty()) return statuses;
  if (!kernels) {  // other devices or dtypes: the general path
    SubnetMerger merger(full, full_params);
    for (const UpdateToMerge* u : accepted) {
      absl::Status s = u->is_delta ? merger.AddDeltas(*u->units, *u->tensors)
                                   : merger.AddWeights(*u->units, *u->tensors);
      if (!s.ok()) return statuses;  // validated above: cannot happen
    }
    ApplyMergedDelta(merger.Finish(), full_params);
    return statuses;
  }
  for (const auto& [name, theta] : full_params) {
    // Where each accepted update lands in this tensor, and how many land on
    // each position along the sliced dimension.
    std::vector<SliceRule> rules;
    int64_t dim = 0;
    for (const UpdateToMerge* u : accepted) {
      std::optional<SliceRule> rule = *SliceRuleFor(full, *u->units, name);
      if (!rule) {  // replicated: every row
        rule = SliceRule{
            0, std::vector<int64_t>(theta.dim() == 0 ? 1 : theta.size(0))};
        for (size_t i = 0; i < rule->index.size(); ++i)
          rule->index[i] = static_cast<int64_t>(i);
      }
      dim = rule->dim;
      rules.push_back(std::move(*rule));
    }
    const int64_t along = theta.dim() == 0 ? 1 : theta.size(dim);
    std::vector<int32_t> count(along, 0);
    bool shared = false;
    for (const auto& rule : rules) {
      for (int64_t a : rule.index) shared |= ++count[a] > 1;
    }
    const at::Tensor sum = shared ? torch::zeros_like(theta) : at::Tensor();
    std::vector<const std::vector<int64_t>*> indices;
    std::vector<at::Tensor> tensors;
    std::vector<bool> is_delta;
    for (size_t k = 0; k < accepted.size(); ++k) {
      indices.push_back(&rules[k].index);
      tensors.push_back(*accepted[k]->tensors->Find(name));
      is_delta.push_back(accepted[k]->is_delta);
    }
    MergeSlices(theta, dim, indices, tensors, is_delta, count, sum);
    if (shared) ApplySums(theta, dim, count, sum);
  }
  return statuses;
}

}  // namespace twist::common
