#include "common/model/chunked_cross_entropy.h"

#include <algorithm>

namespace twist::common {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

int64_t RowsPerBlock(int64_t requested, int64_t vocab) {
  if (requested > 0) return requested;
  return std::max<int64_t>(1, kLogitsPerBlock / std::max<int64_t>(1, vocab));
}

// The type the loss and its gradient are computed in: float64 for a float64
// model, else float32 whatever the forward's arithmetic (a bfloat16 softmax
// over tens of thousands of classes loses the small probabilities).
torch::ScalarType AccumulationType(const torch::Tensor& weight) {
  return weight.scalar_type() == torch::kDouble ? torch::kDouble
                                                : torch::kFloat;
}

// The logits of rows [begin, begin + rows) of x, in the accumulation type:
// (rows, V).
torch::Tensor BlockLogits(const torch::Tensor& x, const torch::Tensor& weight,
                          const c10::optional<torch::Tensor>& bias,
                          int64_t begin, int64_t rows) {
  const torch::Tensor xb = x.narrow(0, begin, rows);  // (rows, C)
  torch::Tensor logits = bias ? torch::linear(xb, weight, *bias)
                              : torch::linear(xb, weight);  // (rows, V)
  const torch::ScalarType type = AccumulationType(weight);
  return logits.scalar_type() == type ? logits : logits.to(type);
}

// Sum over rows of logsumexp(logits) - logits[target]: a scalar in the
// logits' (accumulation) type.
// logits (rows, V), targets (rows, 1); lse (rows, 1).
torch::Tensor BlockLossSum(const torch::Tensor& logits,
                           const torch::Tensor& targets,
                           const torch::Tensor& lse) {
  return (lse - logits.gather(1, targets)).sum();
}

class ChunkedCrossEntropyFunction
    : public torch::autograd::Function<ChunkedCrossEntropyFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight,
                               const c10::optional<torch::Tensor>& bias,
                               const torch::Tensor& targets, int64_t rows) {
    const int64_t n = x.size(0);
    torch::Tensor dx = torch::empty(x.sizes(), x.options());  // (N, C)
    const torch::ScalarType type = AccumulationType(weight);
    torch::Tensor dw =
        torch::zeros(weight.sizes(), weight.options().dtype(type));  // (V, C)
    torch::Tensor loss_sum = torch::zeros({}, x.options().dtype(type));
    for (int64_t begin = 0; begin < n; begin += rows) {
      const int64_t m = std::min(rows, n - begin);
      const torch::Tensor tb = targets.narrow(0, begin, m).unsqueeze(1);  // (m, 1)
      torch::Tensor logits = BlockLogits(x, weight, bias, begin, m);  // (m, V)
      const torch::Tensor lse =
          torch::logsumexp(logits, /*dim=*/1, /*keepdim=*/true);  // (m, 1)
      loss_sum += BlockLossSum(logits, tb, lse);
      // d(mean loss)/d(logits) = (softmax - one-hot) / N, in place.
      torch::Tensor g = logits.sub_(lse).exp_();  // (m, V)
      g.scatter_add_(1, tb, torch::full({m, 1}, -1.0, g.options()));
      g.div_(static_cast<double>(n));
      dx.narrow(0, begin, m).copy_(torch::mm(g, weight));  // (m, C)
      dw.addmm_(g.t(), x.narrow(0, begin, m).to(type));  // (V, C)
    }
    ctx->saved_data["dx"] = dx;
    ctx->saved_data["dw"] = dw;
    ctx->saved_data["weight_dtype"] = weight.scalar_type();
    return loss_sum / static_cast<double>(n);
  }

  static variable_list backward(AutogradContext* ctx,
                                variable_list grad_outputs) {
    const torch::Tensor& g = grad_outputs[0];  // () the loss's gradient
    torch::Tensor dx = ctx->saved_data["dx"].toTensor();
    torch::Tensor dw = ctx->saved_data["dw"].toTensor();
    const auto weight_dtype = ctx->saved_data["weight_dtype"].toScalarType();
    ctx->saved_data.clear();
    dx.mul_(g);
    dw.mul_(g);
    return {dx, dw.to(weight_dtype), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

torch::Tensor ChunkedCrossEntropy(const torch::Tensor& x,
                                 const torch::Tensor& weight,
                                 const torch::Tensor& bias,
                                 const torch::Tensor& targets,
                                 int64_t rows_per_block) {
  TORCH_CHECK(x.dim() == 2 && weight.dim() == 2 && x.size(1) == weight.size(1),
              "ChunkedCrossEntropy: x (N, C) and weight (V, C) expected, got ",
              x.sizes(), " and ", weight.sizes());
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == x.size(0),
              "ChunkedCrossEntropy: targets (N) expected for ", x.size(0),
              " rows, got ", targets.sizes());
  TORCH_CHECK(!bias.defined() || !bias.requires_grad(),
              "ChunkedCrossEntropy: the bias gets no gradient");
  const int64_t rows = RowsPerBlock(rows_per_block, weight.size(0));
  const c10::optional<torch::Tensor> maybe_bias =
      bias.defined() ? c10::optional<torch::Tensor>(bias) : c10::nullopt;
  const bool grad = torch::GradMode::is_enabled() &&
                    (x.requires_grad() || weight.requires_grad());
  if (grad) {
    return ChunkedCrossEntropyFunction::apply(x, weight, maybe_bias, targets,
                                             rows);
  }
  const int64_t n = x.size(0);
  torch::Tensor loss_sum =
      torch::zeros({}, x.options().dtype(AccumulationType(weight)));
  for (int64_t begin = 0; begin < n; begin += rows) {
    const int64_t m = std::min(rows, n - begin);
    const torch::Tensor logits =
        BlockLogits(x, weight, maybe_bias, begin, m);  // (m, V)
    loss_sum += BlockLossSum(
        logits, targets.narrow(0, begin, m).unsqueeze(1),
        torch::logsumexp(logits, /*dim=*/1, /*keepdim=*/true));
  }
  return loss_sum / static_cast<double>(n);
}

}  // namespace twist::common
