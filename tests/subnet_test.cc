#include "common/ist/subnet.h"
#include "common/training/evaluation.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "common/data/dataset.h"
#include "common/training/local_training.h"
#include "common/model/model_io.h"
#include "common/model/threads.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::common {
namespace {

using ::twist::testing::MakeModel;
using ::twist::testing::RandomTokens;
using ::twist::testing::RandomUnits;
using ::twist::testing::SmallConfig;

// A model whose heads do not tile its width and whose layers differ.
ModelConfig RaggedConfig() {
  ModelConfig c;
  c.n_layer = 3;
  c.n_embd = 24;
  c.head_dim = 8;
  c.n_head = {3, 5, 2};
  c.ffn_width = {40, 96, 17};
  c.block_size = 16;
  c.vocab_size = 50;
  return c;
}

// ||a - b||_inf / ||b||_inf
double RelativeError(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

struct Case {
  ModelConfig config;
  SubnetUnits units;
};

// Several random subnetworks of two shapes; the first holds nothing at all
// in layer 0 and everything in the last layer.
std::vector<Case> Cases() {
  std::vector<Case> cases;
  SplitMix64 rng(31337);
  for (const ModelConfig& config : {SmallConfig(), RaggedConfig()}) {
    for (int i = 0; i < 4; ++i) {
      SubnetUnits units = twist::testing::RandomUnits(config, rng);
      if (i == 0) {
        units.layers[0] = LayerUnits{};
        units.layers.back() = AllUnits(config).layers.back();
      }
      cases.push_back({config, units});
    }
  }
  return cases;
}

// Copies of `tensors` on the CPU (the tensors themselves when there already).
NamedTensors OnCpu(const NamedTensors& tensors) {
  NamedTensors out;
  for (const auto& [name, t] : tensors) out.Set(name, t.detach().to(torch::kCPU));
  return out;
}

// Runs the subnetwork and the masked full model on the same tokens, on
// `device`.
void CompareForward(torch::Dtype dtype, double rtol, double atol,
                    const torch::Device& device = torch::kCPU) {
  uint64_t seed = 100;
  for (const Case& c : Cases()) {
    for (PartialSumScaling scaling :
         {PartialSumScaling::kInverseKeepRatio, PartialSumScaling::kNone}) {
      Gpt full = MakeModel(c.config, ++seed, dtype);
      full->to(device);
      full->SetPartialSumScales(ScalesFor(c.config, c.units, scaling));
      const UnitMasks masks =
          MasksFor(c.config, c.units, torch::dtype(dtype).device(device));
      auto idx = RandomTokens(3, c.config.block_size, c.config.vocab_size, seed)
                     .to(device);
      torch::NoGradGuard no_grad;
      auto expected = full->forward(idx, &masks);

      // Slicing runs on the CPU, as on the coordinator; the subnetwork then
      // goes to the device, as on a worker.
      auto sliced = twist::testing::ExtractOne(
          c.config, OnCpu(ParameterTensors(*full)), c.units);
      ASSERT_TRUE(sliced.ok()) << sliced.status();
      auto sub = BuildSubnetModel(c.config, c.units, *sliced, scaling);
      ASSERT_TRUE(sub.ok()) << sub.status();
      (*sub)->to(device);
      EXPECT_EQ((*sub)->config(), SubnetConfig(c.config, c.units));
      auto actual = (*sub)->forward(idx);
      ASSERT_EQ(actual.scalar_type(), dtype);
      ASSERT_EQ(actual.device(), device);
      if (dtype == torch::kFloat64) {
        EXPECT_LE(RelativeError(actual, expected), rtol)
            << c.config.DebugString();
      } else {
        EXPECT_TRUE(torch::allclose(actual, expected, rtol, atol))
            << "max abs diff "
            << (actual - expected).abs().max().item<double>();
      }
    }
  }
}

TEST(SubnetTest, ForwardEqualsMaskedFullModelFloat64) {
  CompareForward(torch::kFloat64, /*rtol=*/1e-10, /*atol=*/0);
}

TEST(SubnetTest, ForwardEqualsMaskedFullModelFloat32) {
  CompareForward(torch::kFloat32, /*rtol=*/1e-4, /*atol=*/1e-6);
}

// Compares the subnetwork's gradients with the slices of the masked full
// model's gradients, on `device`: each within tol * max(1, |expected|_inf).
void CompareGradients(torch::Dtype dtype, double tol,
                      const torch::Device& device = torch::kCPU) {
  uint64_t seed = 500;
  for (const Case& c : Cases()) {
    for (PartialSumScaling scaling :
         {PartialSumScaling::kInverseKeepRatio, PartialSumScaling::kNone}) {
      Gpt full = MakeModel(c.config, ++seed, dtype);
      full->to(device);
      full->SetPartialSumScales(ScalesFor(c.config, c.units, scaling));
      const UnitMasks masks =
          MasksFor(c.config, c.units, torch::dtype(dtype).device(device));
      auto idx = RandomTokens(2, c.config.block_size, c.config.vocab_size, seed)
                     .to(device);
      auto targets =
          RandomTokens(2, c.config.block_size, c.config.vocab_size, seed + 1)
              .to(device);
      full->Loss(idx, targets, &masks).backward();

      auto sliced = twist::testing::ExtractOne(
          c.config, OnCpu(ParameterTensors(*full)), c.units);
      ASSERT_TRUE(sliced.ok());
      auto sub = BuildSubnetModel(c.config, c.units, *sliced, scaling);
      ASSERT_TRUE(sub.ok());
      (*sub)->to(device);
      (*sub)->Loss(idx, targets).backward();

      const NamedTensors full_params = ParameterTensors(*full);
      for (const auto& [name, param] : ParameterTensors(**sub)) {
        if (param.numel() == 0) continue;
        ASSERT_EQ(param.device(), device) << name;
        const at::Tensor& full_param = *full_params.Find(name);
        auto rule = SliceRuleFor(c.config, c.units, name);
        ASSERT_TRUE(rule.ok());
        at::Tensor expected = full_param.grad();
        if (rule->has_value()) {
          expected = expected.index_select(
              (*rule)->dim,
              torch::tensor((*rule)->index, torch::kLong).to(device));
        }
        if (!param.grad().defined()) {
          // Unused by the subnetwork (e.g. ln_1 of a layer without heads):
          // the masked full model must not use it either.
          EXPECT_EQ(expected.abs().max().item<double>(), 0.0) << name;
          continue;
        }
        EXPECT_LE((param.grad() - expected).abs().max().item<double>(),
                  tol * std::max(1.0, expected.abs().max().item<double>()))
            << name;
      }
    }
  }
}

TEST(SubnetTest, GradientsEqualSlicesOfMaskedFullModelGradients) {
  CompareGradients(torch::kFloat64, /*tol=*/1e-10);
}

// The same checks on the first CUDA device, where this LibTorch has CUDA and
// a GPU is visible (CI machines have none: there these tests are skipped).
#define TWIST_SKIP_WITHOUT_CUDA()                                        \
  if (!torch::cuda::is_available())                                      \
  GTEST_SKIP() << "no CUDA device: this LibTorch has no CUDA or no GPU " \
                  "is visible"

TEST(SubnetCudaTest, ForwardEqualsMaskedFullModelFloat32) {
  TWIST_SKIP_WITHOUT_CUDA();
  CompareForward(torch::kFloat32, /*rtol=*/1e-4, /*atol=*/1e-6,
                 torch::Device(torch::kCUDA, 0));
}

TEST(SubnetCudaTest, ForwardEqualsMaskedFullModelFloat64) {
  TWIST_SKIP_WITHOUT_CUDA();
  CompareForward(torch::kFloat64, /*rtol=*/1e-10, /*atol=*/0,
                 torch::Device(torch::kCUDA, 0));
}

TEST(SubnetCudaTest, GradientsEqualSlicesOfMaskedFullModelGradients) {
  TWIST_SKIP_WITHOUT_CUDA();
  CompareGradients(torch::kFloat64, /*tol=*/1e-10,
                   torch::Device(torch::kCUDA, 0));
  CompareGradients(torch::kFloat32, /*tol=*/1e-4,
                   torch::Device(torch::kCUDA, 0));
}

// A worker's local training (TrainLocalSteps) of a half subnetwork on CUDA:
// its first step matches the same step on the CPU, the tensors come back to
// the CPU as the worker sends them, and a few dozen steps on a learnable
// token stream lower the validation loss.
TEST(SubnetCudaTest, LocalTrainingMatchesCpuAndLowersTheLoss) {
  TWIST_SKIP_WITHOUT_CUDA();
  auto device = ResolveDevice("cuda:0");
  ASSERT_TRUE(device.ok()) << device.status();
  ASSERT_TRUE(device->is_cuda());
  auto automatic = ResolveDevice("auto");
  ASSERT_TRUE(automatic.ok());
  EXPECT_EQ(*automatic, *device);

  const ModelConfig config = SmallConfig();
  SubnetUnits units = AllUnits(config);
  for (auto& layer : units.layers) {
    layer.heads = {0, 2};
    layer.ffn_columns.resize(config.ffn_width[0] / 2);
  }
  Gpt full = MakeModel(config, 21);
  auto initial = twist::testing::ExtractOne(config, ParameterTensors(*full), units);
  ASSERT_TRUE(initial.ok()) << initial.status();
  NamedTensors initial_on_device;
  for (const auto& [name, t] : *initial)
    initial_on_device.Set(name, t.to(*device));
  const auto scaling = PartialSumScaling::kInverseKeepRatio;
  auto on_cpu = BuildSubnetModel(config, units, *initial, scaling);
  auto on_cuda = BuildSubnetModel(config, units, initial_on_device, scaling);
  ASSERT_TRUE(on_cpu.ok() && on_cuda.ok());
  ASSERT_EQ((*on_cuda)->transformer->wte->weight.device(), *device);

  // A learnable stream: each token determines the next, (5t + 3) mod 256.
  const std::string dir = twist::testing::MakeTempDir();
  const std::string path = dir + "/train.bin";
  std::vector<uint16_t> tokens(1 << 15);
  tokens[0] = 7;
  for (size_t i = 1; i < tokens.size(); ++i) {
    tokens[i] = static_cast<uint16_t>((5 * tokens[i - 1] + 3) % 256);
  }
  ASSERT_TRUE(WriteTokenFile(path, tokens).ok());
  auto file = TokenFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();

  LocalTrainingOptions options;
  options.batch_size = 16;
  options.context = config.block_size;
  options.schedule.peak = 3e-3;
  options.schedule.total_steps = 40;
  options.steps = 1;
  auto cpu_step = TrainLocalSteps(**on_cpu, **file, options);
  auto cuda_step = TrainLocalSteps(**on_cuda, **file, options);
  ASSERT_TRUE(cpu_step.ok()) << cpu_step.status();
  ASSERT_TRUE(cuda_step.ok()) << cuda_step.status();
  EXPECT_NEAR(cuda_step->mean_loss, cpu_step->mean_loss,
              1e-4 * cpu_step->mean_loss);
  {
    // What the worker sends back: each parameter copied to the CPU,
    // contiguous. After one AdamW step it is the CPU's step, up to the
    // elements whose tiny gradients differ in sign (each off by ~2 lr).
    torch::NoGradGuard no_grad;
    const NamedTensors cpu_params = ParameterTensors(**on_cpu);
    double diff2 = 0, update2 = 0;
    for (const auto& [name, param] : ParameterTensors(**on_cuda)) {
      ASSERT_EQ(param.device(), *device) << name;
      const at::Tensor sent = param.detach().to(torch::kCPU).contiguous();
      ASSERT_TRUE(sent.device().is_cpu());
      ASSERT_EQ(sent.scalar_type(), torch::kFloat32);
      ASSERT_TRUE(sent.is_contiguous());
      EXPECT_TRUE(torch::isfinite(sent).all().item<bool>()) << name;
      const at::Tensor& want = *cpu_params.Find(name);
      diff2 += (sent - want).pow(2).sum().item<double>();
      update2 += (want - *initial->Find(name)).pow(2).sum().item<double>();
    }
    EXPECT_GT(update2, 0);
    EXPECT_LT(std::sqrt(diff2), 1e-2 * std::sqrt(update2))
        << "|cuda - cpu| " << std::sqrt(diff2) << " vs |update| "
        << std::sqrt(update2);
  }

  auto before = EvaluateLoss(**on_cuda, **file, 4, 16, config.block_size);
  ASSERT_TRUE(before.ok()) << before.status();
  options.steps = 40;
  options.round = 2;
  auto trained = TrainLocalSteps(**on_cuda, **file, options);
  ASSERT_TRUE(trained.ok()) << trained.status();
  EXPECT_EQ(trained->tokens, 40 * 16 * config.block_size);
  auto after = EvaluateLoss(**on_cuda, **file, 4, 16, config.block_size);
  ASSERT_TRUE(after.ok()) << after.status();
  std::printf("CUDA local training: loss %.3f -> %.3f (mean over steps %.3f)\n",
              *before, *after, trained->mean_loss);
  EXPECT_LT(*after, *before - 1.0);
  EXPECT_LT(trained->mean_loss, *before);
  std::filesystem::remove_all(dir);
}

TEST(SubnetTest, ExtractKeepsUnitOrderAndCopies) {
  const ModelConfig config = SmallConfig();
  Gpt full = MakeModel(config, 9);
  SubnetUnits units = AllUnits(config);
  units.layers[0].heads = {1, 3};
  units.layers[0].ffn_columns = {0, 5, 200};
  auto sliced = twist::testing::ExtractOne(config, ParameterTensors(*full), units);
  ASSERT_TRUE(sliced.ok());
  const NamedTensors params = ParameterTensors(*full);
  const int64_t H = 4, D = 16;
  const auto& qkv = *params.Find("transformer.h.0.attn.c_attn.weight");
  const auto& got = *sliced->Find("transformer.h.0.attn.c_attn.weight");
  ASSERT_EQ(got.sizes().vec(), (std::vector<int64_t>{3 * 2 * D, 64}));
  // v block, second held head (3): rows 2*H*D + 3*D ...
  EXPECT_TRUE(got.slice(0, 5 * D, 6 * D)
                  .equal(qkv.slice(0, 2 * H * D + 3 * D, 2 * H * D + 4 * D)));
  const auto& proj = *sliced->Find("transformer.h.0.mlp.c_proj.weight");
  EXPECT_TRUE(proj.select(1, 2).equal(
      params.Find("transformer.h.0.mlp.c_proj.weight")->select(1, 200)));
  // Slices are copies: writing them leaves the full model alone.
  sliced->Find("transformer.wte.weight")->zero_();
  EXPECT_GT(params.Find("transformer.wte.weight")->abs().sum().item<double>(),
            0);
}

TEST(SubnetTest, ExtractionIsTheSameBytesOnAnyNumberOfThreads) {
  const ModelConfig config = SmallConfig();
  Gpt full = MakeModel(config, 9);
  const NamedTensors params = ParameterTensors(*full);
  SplitMix64 rng(40);
  std::vector<SubnetUnits> slots;
  for (int s = 0; s < 3; ++s) slots.push_back(RandomUnits(config, rng));
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  auto one = ExtractSubnets(config, params, slots, at::kFloat);
  ASSERT_TRUE(one.ok()) << one.status();
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    at::set_num_threads(1);
    auto serial = ExtractSubnets(config, params, slots, dtype);
    ASSERT_TRUE(serial.ok()) << serial.status();
    at::set_num_threads(3);
    // The copies really run on 3 threads (the project's files are compiled
    // with LibTorch's OpenMP).
    ASSERT_EQ(ParallelForThreads(), 3);
    auto parallel = ExtractSubnets(config, params, slots, dtype);
    ASSERT_TRUE(parallel.ok()) << parallel.status();
    for (size_t s = 0; s < slots.size(); ++s) {
      ASSERT_EQ((*serial)[s].size(), (*parallel)[s].size());
      for (const auto& [name, t] : (*serial)[s]) {
        const at::Tensor& other = *(*parallel)[s].Find(name);
        ASSERT_EQ(t.sizes(), other.sizes()) << name;
        EXPECT_EQ(std::memcmp(t.data_ptr(), other.data_ptr(),
                              t.numel() * t.element_size()),
                  0)
            << name << ", slot " << s << ", " << c10::toString(dtype);
      }
    }
  }
  at::set_num_threads(threads);
  // And the slices are the model's values: slot 0's FFN output projection
  // holds the columns of its units, in a layer where it has some.
  int layer = 0;
  while (slots[0].layers[layer].ffn_columns.empty()) ++layer;
  const std::string proj =
      "transformer.h." + std::to_string(layer) + ".mlp.c_proj.weight";
  const auto& columns = slots[0].layers[layer].ffn_columns;
  const at::Tensor want = params.Find(proj)->index_select(
      1, torch::tensor(std::vector<int64_t>(columns.begin(), columns.end())));
  EXPECT_TRUE((*one)[0].Find(proj)->equal(want));
}

TEST(SubnetTest, RejectsInvalidUnits) {
  const ModelConfig config = SmallConfig();
  Gpt full = MakeModel(config, 9);
  const NamedTensors params = ParameterTensors(*full);
  SubnetUnits units = AllUnits(config);
  units.layers[1].heads = {2, 1};
  auto s = twist::testing::ExtractOne(config, params, units).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("layer 1 head ids must be strictly ascending"),
            std::string::npos)
      << s;
  units = AllUnits(config);
  units.layers[2].ffn_columns.push_back(256);
  s = twist::testing::ExtractOne(config, params, units).status();
  EXPECT_NE(s.message().find("layer 2 FFN column id 256 is outside [0, 256)"),
            std::string::npos)
      << s;
  units = AllUnits(config);
  units.layers.pop_back();
  EXPECT_EQ(twist::testing::ExtractOne(config, params, units).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SubnetTest, HoldsOnlyItsOwnParameters) {
  // The subnetwork of 2 of 4 heads and half the FFN columns in every layer.
  const ModelConfig config = SmallConfig();
  SubnetUnits units = AllUnits(config);
  for (auto& layer : units.layers) {
    layer.heads = {0, 2};
    layer.ffn_columns.resize(config.ffn_width[0] / 2);
  }
  const ModelConfig sub = SubnetConfig(config, units);
  Gpt model(sub);
  const int64_t full_count = config.NumParameters();
  const int64_t sub_count = ParameterTensors(*model).NumElements();
  EXPECT_EQ(sub_count, sub.NumParameters());
  // Per layer the partitioned part halves; embeddings, norms and output
  // biases stay whole.
  const int64_t C = 64, partitioned_per_layer = 3 * C * C + 3 * C + C * C +
                                                4 * C * C + 4 * C + 4 * C * C;
  EXPECT_EQ(full_count - sub_count, config.n_layer * partitioned_per_layer / 2);
  std::printf(
      "full model %lld parameters, 2-of-4-heads half-FFN subnet %lld "
      "(%.1f%%)\n",
      static_cast<long long>(full_count), static_cast<long long>(sub_count),
      100.0 * sub_count / full_count);
}

TEST(SubnetTest, ScalesAreInverseKeepRatios) {
  const ModelConfig config = SmallConfig();
  SubnetUnits units = AllUnits(config);
  units.layers[0].heads = {1};
  units.layers[1].ffn_columns = {0, 1, 2, 3};
  units.layers[2].heads.clear();
  auto scales = ScalesFor(config, units, PartialSumScaling::kInverseKeepRatio);
  EXPECT_DOUBLE_EQ(scales.attn[0], 4.0);
  EXPECT_DOUBLE_EQ(scales.mlp[1], 64.0);
  EXPECT_DOUBLE_EQ(scales.attn[2], 1.0);  // holds nothing: scale unused
  EXPECT_DOUBLE_EQ(scales.attn[3], 1.0);
  auto none = ScalesFor(config, units, PartialSumScaling::kNone);
  EXPECT_DOUBLE_EQ(none.attn[0], 1.0);
  EXPECT_DOUBLE_EQ(none.mlp[1], 1.0);
}

}  // namespace
}  // namespace twist::common
