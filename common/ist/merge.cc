#include "common/ist/merge.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/model/finite.h"
#include "common/model/model_io.h"
#include "common/model/threads.h"

namespace twist::common {
namespace {

// Where the update of `units` lands in tensor `name`: its slice rule, or
// nullopt for a replicated tensor (every update holds all of it).
std::optional<SliceRule> RuleOf(const ModelConfig& full,
                                const SubnetUnits& units,
                                const std::string& name) {
  return *SliceRuleFor(full, units, name);
}

// A replicated tensor as (rows, 1, row): every update holds its one position
// along dimension 1, so the merge's scratch is one row, not the tensor.
at::Tensor RowsView(const at::Tensor& t) {
  const int64_t rows = t.dim() >= 2 ? t.size(0) : 1;
  return t.view({rows, 1, t.numel() / std::max<int64_t>(rows, 1)});
}

}  // namespace

absl::Status ValidateUpdate(const ModelConfig& full,
                            const NamedTensors& full_params,
                            const SliceUpdate& update) {
  TWIST_RETURN_IF_ERROR(ValidateUnits(full, *update.units));
  TWIST_RETURN_IF_ERROR(
      CheckParameterShapes(SubnetConfig(full, *update.units), *update.tensors));
  for (const auto& [name, tensor] : *update.tensors) {
    const at::ScalarType model_type = full_params.Find(name)->scalar_type();
    const bool narrow_delta =
        update.is_delta && tensor.scalar_type() == at::kBFloat16;
    if (tensor.scalar_type() != model_type && !narrow_delta) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", name, "' has dtype ", c10::toString(tensor.scalar_type()),
          ", expected ", c10::toString(model_type),
          update.is_delta ? " or BFloat16" : ""));
    }
  }
  return CheckFinite(*update.tensors);
}

absl::Status MergeUpdates(const ModelConfig& full, const NamedTensors& params,
                          const std::vector<SliceUpdate>& updates,
                          const OuterStep& step, NamedTensors* velocity,
                          TensorPool* scratch) {
  // Everything that could make a kernel write out of bounds is checked
  // before the first write.
  for (const SliceUpdate& u : updates) {
    TWIST_RETURN_IF_ERROR(ValidateUnits(full, *u.units));
    TWIST_RETURN_IF_ERROR(
        CheckParameterShapes(SubnetConfig(full, *u.units), *u.tensors));
    for (const auto& [name, t] : *u.tensors) {
      const at::Tensor& theta = *params.Find(name);
      if (!KernelSupports(theta, t.scalar_type()) || !t.is_contiguous() ||
          !t.device().is_cpu()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "cannot merge tensor '", name, "' of dtype ",
            c10::toString(t.scalar_type()), " into a ",
            c10::toString(theta.scalar_type()), " model on ",
            theta.device().str(),
            ": the merge runs on contiguous CPU float32 or float64 models"));
      }
    }
  }
  if (updates.empty()) return absl::OkStatus();
  const bool momentum = step.momentum != 0.0;
  if (momentum) {  // created here: the tensors below merge concurrently
    for (const auto& [name, theta] : params) {
      if (const at::Tensor* v = velocity->Find(name); v != nullptr) {
        const bool fits =
            v->sizes() == theta.sizes() && v->is_contiguous() &&
            v->device() == theta.device() &&
            (v->scalar_type() == theta.scalar_type() ||
             v->scalar_type() == at::kBFloat16);
        if (!fits) {
          return absl::InvalidArgumentError(absl::StrCat(
              "the outer step's velocity of '", name, "' is a ",
              c10::toString(v->scalar_type()), " tensor of shape ",
              c10::str(v->sizes()), "; expected a contiguous ",
              c10::toString(kVelocityType), " or ",
              c10::toString(theta.scalar_type()), " one of shape ",
              c10::str(theta.sizes())));
        }
      }
    }
    for (const auto& [name, theta] : params) {
      if (velocity->Find(name) == nullptr) {
        velocity->Set(name, at::zeros(theta.sizes(),
                                      theta.options().dtype(kVelocityType)));
      }
    }
  }
  // One tensor's merge: each reads and writes only its own tensor, with the
  // same arithmetic whichever thread runs it, so the result does not depend
  // on the thread count.
  auto merge_tensor = [&](size_t t) {
    const std::string& name = params[t].name;
    const at::Tensor& theta = params[t].tensor;
    // Where each update lands in this tensor, and how many land on each
    // position along the sliced dimension. A replicated tensor is merged as
    // rows that every update holds whole.
    const bool replicated = !RuleOf(full, *updates[0].units, name).has_value();
    auto shaped = [&](const at::Tensor& t) {
      return replicated ? RowsView(t) : t;
    };
    std::vector<SliceRule> rules;
    rules.reserve(updates.size());
    for (const SliceUpdate& u : updates) {
      rules.push_back(replicated ? SliceRule{1, {0}}
                                 : *RuleOf(full, *u.units, name));
    }
    const at::Tensor target = shaped(theta);
    const int64_t dim = rules[0].dim;
    std::vector<int32_t> count(target.size(dim), 0);
    bool shared = false;
    for (const auto& rule : rules) {
      for (int64_t a : rule.index) shared |= ++count[a] > 1;
    }
    at::Tensor sum;  // one tile's scratch
    if (shared) {
      const std::vector<int64_t> row = {SumElements(target, dim)};
      sum = scratch != nullptr ? scratch->Acquire(row, theta.options())
                               : at::empty(row, theta.options());
    }
    const at::Tensor v = momentum ? shaped(*velocity->Find(name)) : at::Tensor();
    std::vector<const std::vector<int64_t>*> indices;
    std::vector<at::Tensor> tensors;
    std::vector<bool> is_delta;
    for (size_t k = 0; k < updates.size(); ++k) {
      indices.push_back(&rules[k].index);
      tensors.push_back(shaped(*updates[k].tensors->Find(name)));
      is_delta.push_back(updates[k].is_delta);
    }
    MergeSlices(target, dim, indices, tensors, is_delta, count, sum, step, v);
  };
  std::vector<int64_t> costs;
  for (const auto& [name, theta] : params) costs.push_back(theta.numel());
  ForEachBalanced(costs, merge_tensor);
  return absl::OkStatus();
}

}  // namespace twist::common
