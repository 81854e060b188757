#include "common/training/adamw.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"

namespace twist::common {
namespace {

// Shape of per-position counts along `dim` of a tensor shaped like `like`,
// ready to broadcast against it; a single count when dim < 0.
std::vector<int64_t> StepsShape(const at::Tensor& like, int64_t dim) {
  if (dim < 0) return {};
  std::vector<int64_t> shape(like.dim(), 1);
  shape[dim] = like.size(dim);
  return shape;
}

int64_t Positions(const at::Tensor& like, int64_t dim) {
  return dim < 0 ? 1 : like.size(dim);
}

// The elements of one batch of the update's last step: its temporaries
// (the square roots of the second moments) exist for one batch at a time,
// 16 MB in float32, not for every parameter at once.
constexpr int64_t kUpdateBatchElements = int64_t{4} << 20;

// Parameters and their moments as batches of flat pieces, each batch at most
// kUpdateBatchElements: a tensor larger than that is cut into pieces.
struct UpdateBatch {
  std::vector<at::Tensor> params, exp_avgs, exp_avg_sqs;
};
std::vector<UpdateBatch> UpdateBatches(const std::vector<at::Tensor>& params,
                                       const std::vector<at::Tensor>& exp_avgs,
                                       const std::vector<at::Tensor>& exp_avg_sqs) {
  std::vector<UpdateBatch> out(1);
  int64_t filled = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const at::Tensor p = params[i].view(-1);      // [n], the same memory
    const at::Tensor m = exp_avgs[i].view(-1);    // [n]
    const at::Tensor v = exp_avg_sqs[i].view(-1); // [n]
    for (int64_t at = 0, n = p.numel(); at < n;) {
      if (filled == kUpdateBatchElements) {
        out.emplace_back();
        filled = 0;
      }
      const int64_t len = std::min(n - at, kUpdateBatchElements - filled);
      out.back().params.push_back(p.narrow(0, at, len));
      out.back().exp_avgs.push_back(m.narrow(0, at, len));
      out.back().exp_avg_sqs.push_back(v.narrow(0, at, len));
      filled += len;
      at += len;
    }
  }
  return out;
}

}  // namespace

std::string ExpAvgName(const std::string& param) {
  return "exp_avg." + param;
}
std::string ExpAvgSqName(const std::string& param) {
  return "exp_avg_sq." + param;
}
std::string StepsName(const std::string& param) { return "steps." + param; }

AdamW::AdamW(NamedTensors params, const std::vector<int64_t>& step_dims,
             AdamWOptions options)
    : options_(options) {
  size_t i = 0;
  for (const auto& [name, p] : params) {
    Entry e;
    e.name = name;
    e.param = p;
    e.dim = step_dims[i++];
    e.decay = p.dim() >= 2;
    const at::Tensor data = p.detach();
    // The moments are allocated at first use (AllocateMoments): a state
    // loaded before the first step becomes them, with no zeros beside it.
    // On the CPU whatever the parameter's device: the step counts are read
    // every step, and a read from a GPU would wait for it.
    e.steps = at::zeros(StepsShape(data, e.dim),
                        at::TensorOptions().dtype(at::kDouble));
    entries_.push_back(std::move(e));
  }
}

void AdamW::AllocateMoments() const {
  for (Entry& e : entries_) {
    if (!e.exp_avg.defined()) {
      e.exp_avg = at::zeros_like(e.param.detach(), at::MemoryFormat::Contiguous);
    }
    if (!e.exp_avg_sq.defined()) {
      e.exp_avg_sq =
          at::zeros_like(e.param.detach(), at::MemoryFormat::Contiguous);
    }
  }
}

void AdamW::Step(double lr) {
  at::NoGradGuard no_grad;
  AllocateMoments();
  const double b1 = options_.beta1, b2 = options_.beta2;
  // The arithmetic below, tensor by tensor, batched into multi-tensor
  // (_foreach_) calls: on a GPU one launch per operation for all tensors
  // instead of one per tensor, and the same result element by element.
  std::vector<at::Tensor> decayed, grads, exp_avgs, exp_avg_sqs;
  // Tensors whose positions all stand at step t take torch::optim::AdamW's
  // own update, grouped by t; the others have per-position bias corrections.
  struct Uniform {
    std::vector<at::Tensor> params, exp_avgs, exp_avg_sqs;
  };
  std::map<double, Uniform> uniform;
  std::vector<Entry*> mixed;
  for (Entry& e : entries_) {
    const at::Tensor& grad = e.param.grad();
    if (!grad.defined()) continue;
    at::Tensor p = e.param.detach();
    if (e.decay && options_.weight_decay != 0) decayed.push_back(p);
    grads.push_back(grad);
    exp_avgs.push_back(e.exp_avg);
    exp_avg_sqs.push_back(e.exp_avg_sq);
    e.steps.add_(1);
    const double first = e.steps.min().item<double>();
    const double last = e.steps.max().item<double>();
    if (first == last) {
      Uniform& u = uniform[first];
      u.params.push_back(p);
      u.exp_avgs.push_back(e.exp_avg);
      u.exp_avg_sqs.push_back(e.exp_avg_sq);
    } else {
      mixed.push_back(&e);
    }
  }
  if (grads.empty()) return;
  // p <- p (1 - lr wd); m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2
  if (!decayed.empty()) at::_foreach_mul_(decayed, 1 - lr * options_.weight_decay);
  at::_foreach_mul_(exp_avgs, b1);
  at::_foreach_add_(exp_avgs, grads, 1 - b1);
  at::_foreach_mul_(exp_avg_sqs, b2);
  at::_foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - b2);
  for (auto& [t, u] : uniform) {
    const double bias1 = 1 - std::pow(b1, t);
    const double bias2 = 1 - std::pow(b2, t);
    // p <- p - lr / bias1 * m / (sqrt(v) / sqrt(bias2) + eps)
    for (const UpdateBatch& b :
         UpdateBatches(u.params, u.exp_avgs, u.exp_avg_sqs)) {
      std::vector<at::Tensor> denom = at::_foreach_sqrt(b.exp_avg_sqs);
      at::_foreach_div_(denom, std::sqrt(bias2));
      at::_foreach_add_(denom, options_.eps);
      at::_foreach_addcdiv_(b.params, b.exp_avgs, denom, -lr / bias1);
    }
  }
  for (Entry* e : mixed) {
    at::Tensor p = e->param.detach();
    const auto like = p.options();
    const at::Tensor bias1 = (1 - at::pow(b1, e->steps)).to(like);
    const at::Tensor bias2 = (1 - at::pow(b2, e->steps)).to(like);
    const at::Tensor denom =
        (e->exp_avg_sq.sqrt() / bias2.sqrt()).add_(options_.eps);
    p.addcdiv_(e->exp_avg / bias1, denom, -lr);
  }
}

NamedTensors AdamW::State() const {
  AllocateMoments();
  NamedTensors out;
  for (const Entry& e : entries_) {
    out.Set(ExpAvgName(e.name), e.exp_avg);
    out.Set(ExpAvgSqName(e.name), e.exp_avg_sq);
    out.Set(StepsName(e.name),
            e.steps.reshape({Positions(e.param, e.dim)}).to(at::kFloat));
  }
  return out;
}

absl::Status AdamW::LoadState(NamedTensors state) {
  for (const Entry& e : entries_) {
    for (const std::string& name : {ExpAvgName(e.name), ExpAvgSqName(e.name)}) {
      const at::Tensor* t = state.Find(name);
      if (t == nullptr || t->sizes() != e.param.sizes()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "optimizer state '", name, "' is ",
            t == nullptr ? "missing" : "misshapen", " for parameter '", e.name,
            "'"));
      }
    }
    const at::Tensor* steps = state.Find(StepsName(e.name));
    if (steps == nullptr || steps->numel() != Positions(e.param, e.dim)) {
      return absl::InvalidArgumentError(
          absl::StrCat("optimizer state '", StepsName(e.name), "' is ",
                       steps == nullptr ? "missing" : "misshapen"));
    }
    if (steps->numel() > 0 && steps->min().item<double>() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "optimizer state '", StepsName(e.name), "' has a negative count"));
    }
    const at::Tensor* sq = state.Find(ExpAvgSqName(e.name));
    if (sq->numel() > 0 && sq->min().item<double>() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "optimizer state '", ExpAvgSqName(e.name), "' is negative"));
    }
  }
  // Taken over where it can be: a second copy of the moments would be the
  // size of two models.
  auto load = [](const at::Tensor& param, at::Tensor& mine, at::Tensor& given) {
    if (given.is_contiguous() && given.scalar_type() == param.scalar_type() &&
        given.device() == param.device()) {
      mine = std::move(given);
    } else {
      mine = at::empty_like(param.detach(), at::MemoryFormat::Contiguous)
                 .copy_(given);
    }
  };
  for (Entry& e : entries_) {
    load(e.param, e.exp_avg, *state.Find(ExpAvgName(e.name)));
    load(e.param, e.exp_avg_sq, *state.Find(ExpAvgSqName(e.name)));
    e.steps.copy_(
        state.Find(StepsName(e.name))->to(at::kCPU).reshape(e.steps.sizes()));
  }
  return absl::OkStatus();
}

}  // namespace twist::common
