#include "common/model/chunked_cross_entropy.h"

#include <limits>

#include "common/model/gpt.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::common {
namespace {

// The reference: the whole logits tensor, as torch.nn.functional.cross_entropy
// takes it.
torch::Tensor WholeLogitsLoss(const torch::Tensor& x, const torch::Tensor& w,
                              const torch::Tensor& bias,
                              const torch::Tensor& targets) {
  torch::Tensor logits = bias.defined() ? torch::linear(x, w, bias)
                                        : torch::linear(x, w);  // (N, V)
  return torch::nn::functional::cross_entropy(logits, targets);
}

struct Problem {
  torch::Tensor x, w, bias, targets;
};

// N rows of width C against V classes, the last `padding` masked with -inf.
Problem MakeProblem(int64_t n, int64_t c, int64_t v, int64_t padding) {
  torch::manual_seed(7);
  Problem p;
  p.x = torch::randn({n, c}, torch::kFloat);
  p.w = torch::randn({v, c}, torch::kFloat) * 0.3;
  if (padding > 0) {
    p.bias = torch::zeros({v});
    p.bias.narrow(0, v - padding, padding)
        .fill_(-std::numeric_limits<float>::infinity());
  }
  p.targets = torch::randint(0, v - padding, {n}, torch::kLong);
  return p;
}

TEST(ChunkedCrossEntropyTest, LossEqualsTheWholeLogitsLossForEveryBlockSize) {
  const Problem p = MakeProblem(/*n=*/37, /*c=*/16, /*v=*/320, /*padding=*/20);
  torch::NoGradGuard no_grad;
  const double whole = WholeLogitsLoss(p.x, p.w, p.bias, p.targets).item<double>();
  for (int64_t rows : {1, 5, 16, 37, 100}) {
    EXPECT_NEAR(ChunkedCrossEntropy(p.x, p.w, p.bias, p.targets, rows)
                    .item<double>(),
                whole, 1e-5)
        << rows << " rows per block";
  }
}

TEST(ChunkedCrossEntropyTest, GradientsEqualTheWholeLogitsGradients) {
  for (int64_t padding : {0, 20}) {
    const Problem p = MakeProblem(/*n=*/37, /*c=*/16, /*v=*/320, padding);
    torch::Tensor x_ref = p.x.clone().requires_grad_(true);
    torch::Tensor w_ref = p.w.clone().requires_grad_(true);
    // A scale on the loss checks that the backward pass applies the
    // incoming gradient.
    (WholeLogitsLoss(x_ref, w_ref, p.bias, p.targets) * 3.0).backward();
    for (int64_t rows : {1, 8, 37}) {
      torch::Tensor x = p.x.clone().requires_grad_(true);
      torch::Tensor w = p.w.clone().requires_grad_(true);
      torch::Tensor loss = ChunkedCrossEntropy(x, w, p.bias, p.targets, rows);
      (loss * 3.0).backward();
      EXPECT_TRUE(torch::allclose(x.grad(), x_ref.grad(), 1e-5, 1e-6))
          << rows << " rows, padding " << padding << ": max diff "
          << (x.grad() - x_ref.grad()).abs().max().item<double>();
      EXPECT_TRUE(torch::allclose(w.grad(), w_ref.grad(), 1e-5, 1e-6))
          << rows << " rows, padding " << padding << ": max diff "
          << (w.grad() - w_ref.grad()).abs().max().item<double>();
      // No gradient reaches the padding's classes.
      if (padding > 0) {
        EXPECT_EQ(w.grad().narrow(0, 300, 20).abs().max().item<float>(), 0.0f);
      }
    }
  }
}

TEST(ChunkedCrossEntropyTest, ModelLossEqualsTheLossOfItsWholeLogits) {
  // A vocabulary large enough for several blocks (kLogitsPerBlock / V rows
  // each) and padded, as GPT-2's 50257 in 50304.
  ModelConfig config = twist::testing::SmallConfig();
  config.vocab_size = 65536;
  config.vocab_used = 65500;
  Gpt model = twist::testing::MakeModel(config, 3);
  const auto idx = twist::testing::RandomTokens(6, 32, 65500, 5);  // (B, T)
  const auto targets = twist::testing::RandomTokens(6, 32, 65500, 6);
  ASSERT_LT(kLogitsPerBlock / config.vocab_size, 6 * 32);  // several blocks
  torch::NoGradGuard no_grad;
  const torch::Tensor logits = model->forward(idx);  // (B, T, V)
  const double whole = torch::nn::functional::cross_entropy(
                           logits.view({-1, config.vocab_size}),
                           targets.reshape({-1}))
                           .item<double>();
  EXPECT_NEAR(model->Loss(idx, targets).item<double>(), whole, 1e-5);
}

TEST(ChunkedCrossEntropyTest, RefusesMismatchedShapes) {
  const Problem p = MakeProblem(8, 16, 32, 0);
  EXPECT_THROW(ChunkedCrossEntropy(p.x, p.w.t(), p.bias, p.targets), c10::Error);
  EXPECT_THROW(ChunkedCrossEntropy(p.x, p.w, p.bias, p.targets.narrow(0, 0, 4)),
               c10::Error);
}

}  // namespace
}  // namespace twist::common
