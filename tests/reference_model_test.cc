// Checks the C++ model against tests/reference_gpt.py, a model written
// separately against PyTorch, through an exported weights file.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/ist/subnet.h"
#include "common/model/model_io.h"
#include "common/model/safetensors.h"
#include "common/model/weights_import.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::common {
namespace {

using ::twist::testing::MakeModel;
using ::twist::testing::MakeTempDir;
using ::twist::testing::RandomTokens;

// Weights far from initialisation, so that a wrong GELU variant, LayerNorm
// epsilon or q/k/v order changes the logits well beyond the tolerance: large
// FFN pre-activations, and embeddings small enough (variance ~2e-5) for the
// first LayerNorm's epsilon to matter.
void Scramble(GptImpl& model, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const auto& [name, p] : ParameterTensors(model)) {
    auto noise = torch::randn(p.sizes(), gen, p.options());
    if (name.find("wte") != std::string::npos ||
        name.find("wpe") != std::string::npos) {
      p.copy_(noise * 0.003);
    } else if (name == "transformer.ln_f.weight") {
      p.copy_(300.0 *
              (1.0 + 0.3 * noise));  // logits of order 10 despite the small wte
    } else if (name.find("ln_") != std::string::npos &&
               name.find("weight") != std::string::npos) {
      p.copy_(1.0 + 0.3 * noise);
    } else if (p.dim() == 2) {
      p.copy_(noise * (1.0 / std::sqrt(static_cast<double>(p.size(1)))));
    } else {
      p.copy_(noise * 0.2);
    }
  }
}

// Whether the reference can run here: Python with torch. Tests skip, saying
// so, where it cannot; they must not pass for the wrong reason.
bool ReferenceAvailable(std::string* why) {
  const std::string cmd = std::string(TWIST_REFERENCE_PYTHON) +
                          " -c 'import torch' > /dev/null 2>&1";
  if (std::system(cmd.c_str()) == 0) return true;
  *why = std::string("the reference model needs ") + TWIST_REFERENCE_PYTHON +
         " with torch (Debian's python3-torch: bash deploy/install-deps.sh)";
  return false;
}

#define TWIST_SKIP_WITHOUT_REFERENCE()                  \
  do {                                                  \
    std::string why;                                    \
    if (!ReferenceAvailable(&why)) GTEST_SKIP() << why; \
  } while (false)

// Runs the Python reference on `model`; returns its exit status and output.
std::pair<int, std::string> RunReference(GptImpl& model, const std::string& dir,
                                         uint64_t seed) {
  const std::string model_path = dir + "/model.safetensors";
  const std::string case_path = dir + "/case.safetensors";
  const std::string log_path = dir + "/reference.log";
  EXPECT_TRUE(SaveModel(model_path, model).ok());
  NamedTensors c;
  auto idx = RandomTokens(2, model.config().block_size,
                          model.config().vocab_size, seed);
  {
    torch::NoGradGuard no_grad;
    c.Set("idx", idx);
    c.Set("logits", model.forward(idx));
  }
  EXPECT_TRUE(WriteSafetensors(case_path, c).ok());
  const std::string cmd = std::string(TWIST_REFERENCE_PYTHON) + " " +
                          TWIST_REFERENCE_SCRIPT + " " + model_path + " " +
                          case_path + " > " + log_path + " 2>&1";
  const int status = std::system(cmd.c_str());
  const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::stringstream log;
  log << std::ifstream(log_path).rdbuf();
  return {rc, log.str()};
}

// Runs the reference on dir/model.safetensors (already written) with the
// logits of `other` as the case; returns its exit status (3: computed and
// different).
int ReferenceExitWithLogitsOf(GptImpl& other, const std::string& dir,
                              uint64_t seed) {
  NamedTensors c;
  auto idx = RandomTokens(1, other.config().block_size,
                          other.config().vocab_size, seed);
  {
    torch::NoGradGuard no_grad;
    c.Set("idx", idx);
    c.Set("logits", other.forward(idx));
  }
  EXPECT_TRUE(WriteSafetensors(dir + "/case.safetensors", c).ok());
  const std::string cmd =
      std::string(TWIST_REFERENCE_PYTHON) + " " + TWIST_REFERENCE_SCRIPT + " " +
      dir + "/model.safetensors " + dir + "/case.safetensors > /dev/null 2>&1";
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(ReferenceModelTest, PythonModelGivesTheSameLogitsForAFullModel) {
  TWIST_SKIP_WITHOUT_REFERENCE();
  const std::string dir = MakeTempDir();
  const ModelConfig config = ModelConfig::Full(3, 4, 48, 24, 256);
  Gpt model = MakeModel(config, 1);
  Scramble(*model, 2);
  auto [rc, log] = RunReference(*model, dir, 3);
  EXPECT_EQ(rc, 0) << log;
  std::printf("%s", log.c_str());
  std::filesystem::remove_all(dir);
}

TEST(ReferenceModelTest, PythonModelGivesTheSameLogitsForAScaledSubnetwork) {
  TWIST_SKIP_WITHOUT_REFERENCE();
  const std::string dir = MakeTempDir();
  const ModelConfig config = ModelConfig::Full(3, 4, 48, 24, 256);
  Gpt full = MakeModel(config, 4);
  Scramble(*full, 5);
  SubnetUnits units = AllUnits(config);
  units.layers[0].heads = {1, 2};
  units.layers[1].heads = {};  // a layer without attention
  units.layers[2].ffn_columns = {0, 7, 8, 100, 191};
  auto sub = BuildSubnetModel(
      config, units,
      *twist::testing::ExtractOne(config, ParameterTensors(*full), units),
      PartialSumScaling::kInverseKeepRatio);
  ASSERT_TRUE(sub.ok());
  auto [rc, log] = RunReference(**sub, dir, 6);
  EXPECT_EQ(rc, 0) << log;
  std::printf("%s", log.c_str());
  std::filesystem::remove_all(dir);
}

TEST(ReferenceModelTest, PythonModelGivesTheSameLogitsWithTheTanhGelu) {
  TWIST_SKIP_WITHOUT_REFERENCE();
  const std::string dir = MakeTempDir();
  ModelConfig config = ModelConfig::Full(2, 4, 48, 24, 256);
  config.activation = Activation::kGeluTanh;
  Gpt model = MakeModel(config, 11);
  Scramble(*model, 12);
  auto [rc, log] = RunReference(*model, dir, 13);
  EXPECT_EQ(rc, 0) << log;
  std::printf("%s", log.c_str());
  // The two GELUs differ by more than the tolerance on these weights: the
  // exact one's logits are refused as the tanh model's.
  ModelConfig exact = config;
  exact.activation = Activation::kGelu;
  Gpt same_weights_exact = MakeModel(exact, 11);
  Scramble(*same_weights_exact, 12);
  EXPECT_EQ(ReferenceExitWithLogitsOf(*same_weights_exact, dir, 13), 3);
  std::filesystem::remove_all(dir);
}

// A checkpoint as the Hugging Face hub stores GPT-2 (Conv1D layouts, mask
// buffers, no lm_head, config.json beside it, the tanh GELU), written by
// PyTorch code: imported here, it computes the Python model's logits.
TEST(ReferenceModelTest, HuggingFaceFileWrittenByPythonGivesItsLogits) {
  TWIST_SKIP_WITHOUT_REFERENCE();
  const std::string dir = MakeTempDir();
  const std::string cmd = std::string(TWIST_REFERENCE_PYTHON) + " " +
                          TWIST_REFERENCE_SCRIPT + " write-hf " + dir;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  absl::StatusOr<WeightsFile> file =
      ReadWeightsFile(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->names, WeightNames::kHuggingFace);
  EXPECT_EQ(file->n_head, 4);  // from config.json
  ASSERT_TRUE(file->activation.has_value());
  EXPECT_EQ(*file->activation, Activation::kGeluTanh);
  ModelConfig config =
      ModelConfig::Full(file->n_layer, file->n_head, file->n_embd,
                        file->block_size, file->vocab_size);
  config.activation = *file->activation;
  absl::StatusOr<NamedTensors> weights = ImportWeights(*file, config);
  ASSERT_TRUE(weights.ok()) << weights.status();
  Gpt model(config);
  ASSERT_TRUE(LoadParameters(*model, *weights).ok());
  auto reference = ReadSafetensors(dir + "/case.safetensors");
  ASSERT_TRUE(reference.ok()) << reference.status();
  torch::NoGradGuard no_grad;
  model->eval();
  const at::Tensor logits = model->forward(*reference->tensors.Find("idx"));
  const at::Tensor& expected = *reference->tensors.Find("logits");
  const double err = (logits - expected).abs().max().item<double>();
  const double scale = std::max(1.0, expected.abs().max().item<double>());
  EXPECT_LE(err, 1e-5 * scale) << "max |logits difference| " << err;
  std::printf(
      "Hugging Face file from Python: max |logits difference| = %.3g "
      "(logit scale %.3g)\n",
      err, scale);
  std::filesystem::remove_all(dir);
}

TEST(ReferenceModelTest, ReferenceNoticesADifferentModel) {
  TWIST_SKIP_WITHOUT_REFERENCE();
  // The comparison can fail: logits of another model are refused (exit 3:
  // computed and different, not a crash).
  const std::string dir = MakeTempDir();
  const ModelConfig config = ModelConfig::Full(2, 2, 16, 8, 64);
  Gpt model = MakeModel(config, 1);
  Scramble(*model, 7);
  ASSERT_TRUE(SaveModel(dir + "/model.safetensors", *model).ok());
  Gpt other = MakeModel(config, 1);
  Scramble(*other, 8);
  EXPECT_EQ(ReferenceExitWithLogitsOf(*other, dir, 9), 3);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace twist::common
