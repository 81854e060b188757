#include "common/model/gpt.h"

#include <cmath>

#include "common/model/model_io.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::common {
namespace {

using ::twist::testing::MakeModel;
using ::twist::testing::RandomTokens;
using ::twist::testing::SmallConfig;

TEST(GptTest, ParameterNamesAndShapesAreNanoGpts) {
  const ModelConfig config = SmallConfig();
  Gpt model = MakeModel(config, 1);
  const NamedTensors params = ParameterTensors(*model);
  const auto expected = ParameterShapes(config);
  ASSERT_EQ(params.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(params[i].name, expected[i].name);
    EXPECT_EQ(params[i].tensor.sizes().vec(), expected[i].shape)
        << expected[i].name;
  }
  EXPECT_EQ(params[0].name, "transformer.wte.weight");
  EXPECT_EQ(params[4].name, "transformer.h.0.attn.c_attn.weight");
  EXPECT_FALSE(params.Contains("lm_head.weight"));  // tied: registered once
  EXPECT_EQ(params.NumElements(), config.NumParameters());
}

TEST(GptTest, InitialLossIsNearUniform) {
  const ModelConfig config = SmallConfig();
  Gpt model = MakeModel(config, 3);
  auto idx = RandomTokens(4, 32, config.vocab_size, 5);
  auto targets = RandomTokens(4, 32, config.vocab_size, 6);
  const double loss = model->Loss(idx, targets).item<double>();
  EXPECT_NEAR(loss, std::log(256.0), 0.1);
}

TEST(GptTest, InitIsDeterministicAndSeeded) {
  const ModelConfig config = SmallConfig();
  Gpt a = MakeModel(config, 7), b = MakeModel(config, 7),
      c = MakeModel(config, 8);
  const NamedTensors pa = ParameterTensors(*a), pb = ParameterTensors(*b),
                     pc = ParameterTensors(*c);
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(pa[i].tensor.equal(pb[i].tensor)) << pa[i].name;
  }
  EXPECT_FALSE(pa[0].tensor.equal(pc[0].tensor));
  // GPT-2 init: residual projections are narrower than the rest.
  const double std_fc =
      pa.Find("transformer.h.0.mlp.c_fc.weight")->std().item<double>();
  const double std_proj =
      pa.Find("transformer.h.0.mlp.c_proj.weight")->std().item<double>();
  EXPECT_NEAR(std_fc, 0.02, 0.002);
  EXPECT_NEAR(std_proj, 0.02 / std::sqrt(8.0), 0.001);
}

TEST(GptTest, TrainsOnARepeatingSequence) {
  const ModelConfig config = ModelConfig::Full(2, 2, 32, 16, 16);
  Gpt model = MakeModel(config, 11);
  auto seq = torch::arange(17, torch::kLong).remainder(5).view({1, 17});
  auto idx = seq.slice(1, 0, 16), targets = seq.slice(1, 1, 17);
  torch::optim::AdamW opt(model->parameters(),
                          torch::optim::AdamWOptions(1e-2));
  const double before = model->Loss(idx, targets).item<double>();
  for (int step = 0; step < 30; ++step) {
    opt.zero_grad();
    auto loss = model->Loss(idx, targets);
    loss.backward();
    opt.step();
  }
  const double after = model->Loss(idx, targets).item<double>();
  EXPECT_LT(after, 0.2 * before);
}

TEST(GptTest, SublayersWithoutUnitsOutputOnlyTheirBias) {
  ModelConfig config = SmallConfig();
  config.n_head[1] = 0;
  config.ffn_width[1] = 0;
  config.n_head[2] = 3;  // heads no longer tile the width
  config.ffn_width[3] = 10;
  ASSERT_TRUE(config.Validate().ok());
  Gpt model = MakeModel(config, 2);
  auto idx = RandomTokens(2, 8, config.vocab_size, 1);
  auto loss = model->Loss(idx, idx);
  loss.backward();
  EXPECT_TRUE(std::isfinite(loss.item<double>()));
  auto& block = model->transformer->blocks[1];
  EXPECT_EQ(block->attn->c_attn->weight.numel(), 0);
  // The empty attention's output bias still receives a gradient.
  EXPECT_GT(block->attn->c_proj->bias.grad().abs().sum().item<double>(), 0.0);
  EXPECT_EQ(ParameterTensors(*model).NumElements(), config.NumParameters());
}

// A vocabulary padded past the ids in use: padding gets -inf logits, no
// probability, no share of the loss and no gradient; the used ids compute
// exactly what an unpadded model with the same rows computes.
TEST(GptTest, PaddedVocabularyIsMaskedFromLogitsLossAndGradients) {
  ModelConfig padded = SmallConfig();
  padded.vocab_size = 320;
  padded.vocab_used = 256;
  ASSERT_TRUE(padded.Validate().ok());
  Gpt model = MakeModel(padded, 11);
  auto idx = RandomTokens(2, 16, 256, 12);      // (B, T)
  auto targets = RandomTokens(2, 16, 256, 13);  // (B, T)
  auto logits = model->forward(idx);            // (B, T, 320)
  EXPECT_TRUE(torch::isinf(logits.narrow(-1, 256, 64)).all().item<bool>());
  EXPECT_TRUE(torch::isfinite(logits.narrow(-1, 0, 256)).all().item<bool>());

  // The same weights without the padding rows.
  Gpt unpadded = MakeModel(SmallConfig(), 11);
  {
    torch::NoGradGuard no_grad;
    NamedTensors targets_by_name = ParameterTensors(*unpadded);
    for (const auto& [name, param] : ParameterTensors(*model)) {
      at::Tensor* target = targets_by_name.Find(name);
      ASSERT_NE(target, nullptr) << name;
      target->copy_(name == "transformer.wte.weight" ? param.narrow(0, 0, 256)
                                                     : param);
    }
  }
  auto loss = model->Loss(idx, targets);
  auto reference = unpadded->Loss(idx, targets);
  EXPECT_NEAR(loss.item<double>(), reference.item<double>(), 1e-5);
  loss.backward();
  auto grad = model->transformer->wte->weight.grad();  // (320, C)
  EXPECT_EQ(grad.narrow(0, 256, 64).abs().max().item<float>(), 0.0f);
  EXPECT_GT(grad.narrow(0, 0, 256).abs().max().item<float>(), 0.0f);

  ModelConfig too_many = padded;
  too_many.vocab_used = 321;
  EXPECT_EQ(too_many.Validate().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GptTest, RejectsSequencesLongerThanTheContext) {
  const ModelConfig config = SmallConfig();
  Gpt model = MakeModel(config, 1);
  auto idx = RandomTokens(1, config.block_size + 1, config.vocab_size, 1);
  EXPECT_THROW(model->forward(idx), c10::Error);
}

TEST(GptTest, ResolveDeviceChecksNames) {
  EXPECT_EQ(ResolveDevice("cpu")->type(), torch::kCPU);
  auto automatic = ResolveDevice("auto");
  ASSERT_TRUE(automatic.ok());
  EXPECT_EQ(automatic->is_cuda(), torch::cuda::is_available());
  EXPECT_EQ(ResolveDevice("gpu0").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveDevice("cuda:x").status().code(),
            absl::StatusCode::kInvalidArgument);
  if (!torch::cuda::is_available()) {
    EXPECT_EQ(ResolveDevice("cuda:0").status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
}

}  // namespace
}  // namespace twist::common

namespace twist::common {
namespace {

// Where LibTorch has scaled_dot_product_attention (2.0 and newer) the model
// uses it; it must compute what the explicit products compute, forward and
// backward, on every device the machine has.
TEST(GptTest, FusedAttentionEqualsTheExplicitProducts) {
  if (!kHasFusedAttention) {
    GTEST_SKIP() << "LibTorch " << TORCH_VERSION
                 << " has no scaled_dot_product_attention; the explicit "
                    "products are the only path";
  }
  std::vector<torch::Device> devices = {torch::kCPU};
  if (torch::cuda::is_available()) devices.push_back(torch::Device("cuda:0"));
  for (const torch::Device& device : devices) {
    torch::manual_seed(3);
    const auto options = torch::TensorOptions().device(device);
    auto make = [&] {
      return torch::randn({2, 3, 17, 16}, options).requires_grad_(true);
    };
    torch::Tensor q1 = make(), k1 = make(), v1 = make();
    torch::Tensor q2 = q1.detach().clone().requires_grad_(true),
                  k2 = k1.detach().clone().requires_grad_(true),
                  v2 = v1.detach().clone().requires_grad_(true);
    const torch::Tensor fused = CausalAttention(q1, k1, v1, /*fused=*/true);
    const torch::Tensor plain = CausalAttention(q2, k2, v2, /*fused=*/false);
    EXPECT_LT((fused - plain).abs().max().item<double>(), 1e-5) << device;
    const torch::Tensor weights = torch::randn(fused.sizes(), options);
    (fused * weights).sum().backward();
    (plain * weights).sum().backward();
    EXPECT_LT((q1.grad() - q2.grad()).abs().max().item<double>(), 1e-4);
    EXPECT_LT((k1.grad() - k2.grad()).abs().max().item<double>(), 1e-4);
    EXPECT_LT((v1.grad() - v2.grad()).abs().max().item<double>(), 1e-4);
  }
}

TEST(GptTest, ExplicitAttentionIsCausal) {
  // Changing a later position's key and value leaves earlier outputs alone.
  torch::manual_seed(4);
  torch::Tensor q = torch::randn({1, 2, 6, 8}), k = torch::randn({1, 2, 6, 8}),
                v = torch::randn({1, 2, 6, 8});
  const torch::Tensor before = CausalAttention(q, k, v, /*fused=*/false);
  k.select(2, 5).add_(1.0);
  v.select(2, 5).add_(1.0);
  const torch::Tensor after = CausalAttention(q, k, v, /*fused=*/false);
  EXPECT_TRUE(before.narrow(2, 0, 5).equal(after.narrow(2, 0, 5)));
  EXPECT_FALSE(before.select(2, 5).equal(after.select(2, 5)));
}

}  // namespace
}  // namespace twist::common
