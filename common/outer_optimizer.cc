#include "common/outer_optimizer.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"

namespace twist::common {
namespace {

// Where a tensor had contributors (the counts broadcast against it).
at::Tensor ContributedMask(const at::Tensor& counts, const at::Tensor& like) {
  return (counts > 0).expand_as(like);
}

}  // namespace

void OuterOptimizer::Step(const MergedDelta& merged,
                          const NamedTensors& params) {
  torch::NoGradGuard no_grad;
  const double lr = options_.learning_rate, mu = options_.momentum;
  for (const auto& [name, theta] : params) {
    const at::Tensor& delta = *merged.mean_delta.Find(name);
    if (mu == 0.0) {
      // No state to keep: theta - lr * (-delta). With lr = 1 this adds the
      // delta exactly, as plain merging does.
      theta.add_(lr == 1.0 ? delta : delta * lr);
      continue;
    }
    const at::Tensor g = -delta;
    const at::Tensor mask =
        ContributedMask(*merged.contributors.Find(name), theta);
    at::Tensor* v = velocity_.Find(name);
    if (v == nullptr) {
      velocity_.Set(name, torch::zeros_like(theta));
      v = velocity_.Find(name);
    }
    v->copy_(torch::where(mask, *v * mu + g, *v));
    const at::Tensor step = options_.nesterov ? g + *v * mu : *v;
    theta.sub_(torch::where(mask, step * lr, torch::zeros_like(step)));
  }
}

absl::Status OuterOptimizer::LoadState(const NamedTensors& state,
                                       const NamedTensors& params) {
  velocity_ = NamedTensors();
  for (const auto& [name, v] : state) {
    const at::Tensor* p = params.Find(name);
    if (p == nullptr || p->sizes() != v.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "outer optimizer state '", name, "' does not match the model"));
    }
    velocity_.Set(name, v.to(p->options()).clone());
  }
  return absl::OkStatus();
}

}  // namespace twist::common
