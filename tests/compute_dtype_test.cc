// Mixed precision: the autocast guard's scope and cache, the bfloat16 probe
// of a CPU's flags, and local training in bfloat16 against float32.
#include "common/training/compute_dtype.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "common/data/token_file.h"
#include "common/training/local_training.h"
#include "tests/test_models.h"

namespace twist::common {
namespace {

TEST(AutocastGuardTest, ProductsRunInBfloat16InsideAndFloat32Outside) {
  const torch::Tensor x = torch::randn({4, 8});
  const torch::Tensor w = torch::randn({3, 8});
  {
    AutocastGuard guard(c10::DeviceType::CPU, at::kBFloat16);
    EXPECT_EQ(torch::linear(x, w).scalar_type(), at::kBFloat16);
    {
      AutocastGuard nested(c10::DeviceType::CPU, at::kBFloat16);
      EXPECT_EQ(x.matmul(w.t()).scalar_type(), at::kBFloat16);
    }
    // The inner guard restored the outer one's state.
    EXPECT_EQ(torch::linear(x, w).scalar_type(), at::kBFloat16);
  }
  EXPECT_EQ(torch::linear(x, w).scalar_type(), at::kFloat);
  {
    AutocastGuard off(c10::DeviceType::CPU, at::kFloat);  // a no-op
    EXPECT_EQ(torch::linear(x, w).scalar_type(), at::kFloat);
  }
}

TEST(AutocastGuardTest, ANewRegionSeesWeightsChangedInPlace) {
  // Autocast caches the bfloat16 copy of a leaf weight within a region; the
  // next region must not reuse it once the optimizer has stepped.
  torch::Tensor w = torch::ones({2, 2}).requires_grad_(true);
  const torch::Tensor x = torch::ones({1, 2});
  double before = 0, after = 0;
  {
    AutocastGuard guard(c10::DeviceType::CPU, at::kBFloat16);
    before = torch::linear(x, w).sum().item<double>();
  }
  {
    torch::NoGradGuard no_grad;
    w.mul_(3);
  }
  {
    AutocastGuard guard(c10::DeviceType::CPU, at::kBFloat16);
    after = torch::linear(x, w).sum().item<double>();
  }
  EXPECT_EQ(before, 4.0);
  EXPECT_EQ(after, 12.0);
}

TEST(CpuInfoTest, FindsBfloat16UnitsAmongTheFlags) {
  EXPECT_TRUE(CpuInfoHasBFloat16(
      "processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx512vl\n"));
  EXPECT_TRUE(CpuInfoHasBFloat16("flags\t\t: fpu amx_bf16 amx_tile\n"));
  EXPECT_TRUE(CpuInfoHasBFloat16("flags\t\t: fpu avx512_bf16"));
  EXPECT_FALSE(CpuInfoHasBFloat16("flags\t\t: fpu sse avx512f avx512bw\n"));
  EXPECT_FALSE(CpuInfoHasBFloat16("flags\t\t: avx512_bf16x xavx512_bf16\n"));
  EXPECT_FALSE(CpuInfoHasBFloat16(""));
}

TEST(ComputeDtypeTest, Bfloat16LocalStepsFollowFloat32) {
  if (!CheckBFloat16Compute(torch::kCPU).ok()) {
    GTEST_SKIP() << CheckBFloat16Compute(torch::kCPU).message();
  }
  const ModelConfig config = twist::testing::SmallConfig();
  const std::string dir = twist::testing::MakeTempDir();
  std::vector<uint16_t> tokens(1 << 14);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = (i * 7 + i / 13) % 256;
  ASSERT_TRUE(WriteTokenFile(dir + "/train.bin", tokens).ok());
  auto file = TokenFile::Open(dir + "/train.bin");
  ASSERT_TRUE(file.ok());
  LocalTrainingOptions options;
  options.steps = 20;
  options.batch_size = 8;
  options.context = 32;
  options.schedule.peak = 3e-3;
  options.schedule.total_steps = 20;
  Gpt f32 = twist::testing::MakeModel(config, 3);
  Gpt bf16 = twist::testing::MakeModel(config, 3);
  auto a = TrainLocalSteps(*f32, **file, options);
  options.compute_dtype = at::kBFloat16;
  auto b = TrainLocalSteps(*bf16, **file, options);
  ASSERT_TRUE(a.ok() && b.ok());
  // The same batches: the mean losses agree to bfloat16's precision, and
  // both learned (the first loss is about ln 256 = 5.5).
  EXPECT_NEAR(b->mean_loss, a->mean_loss, 0.02 * a->mean_loss);
  EXPECT_NE(b->mean_loss, a->mean_loss);
  EXPECT_LT(a->mean_loss, 5.2);
  for (const auto& [name, p] : ParameterTensors(*bf16)) {
    EXPECT_EQ(p.scalar_type(), at::kFloat) << name;  // float32 masters
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace twist::common
