#include "common/ist/model_export.h"

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "common/data/dataset.h"
#include "common/data/dataset_meta.h"
#include "common/data/token_file.h"
#include "common/ist/pruning.h"
#include "common/ist/shift_correction.h"
#include "common/model/model_io.h"
#include "common/training/evaluation.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::common {
namespace {

using ::twist::testing::MakeModel;
using ::twist::testing::SmallConfig;

// The parameters as a job's model file holds them.
NamedTensors FileTensors(GptImpl& model) {
  Metadata unused;
  absl::StatusOr<NamedTensors> tensors = ExportTensors(model, {}, &unused);
  EXPECT_TRUE(tensors.ok()) << tensors.status();
  return *tensors;
}

// What ExportTensors makes of PruneModel(units, scaling, correction).
NamedTensors Pruned(const ModelConfig& config, const NamedTensors& params,
                    const SubnetUnits& units, PartialSumScaling scaling,
                    const UnitContributions* correction = nullptr) {
  absl::StatusOr<Gpt> model =
      PruneModel(config, params, units, scaling, correction);
  EXPECT_TRUE(model.ok()) << model.status();
  return FileTensors(**model);
}

void ExpectSameTensors(const NamedTensors& actual,
                       const NamedTensors& expected, double tolerance = 0) {
  ASSERT_EQ(actual.size(), expected.size());
  for (const auto& [name, e] : expected) {
    const at::Tensor* a = actual.Find(name);
    ASSERT_NE(a, nullptr) << name;
    ASSERT_EQ(a->sizes(), e.sizes()) << name;
    EXPECT_LE((*a - e).abs().max().item<double>(), tolerance) << name;
  }
}

TEST(ModelExportTest, KeepRatioZeroOrOneExportsTheWholeModel) {
  const ModelConfig config = SmallConfig();
  Gpt full = MakeModel(config, 1);
  const NamedTensors params = FileTensors(*full);
  for (double keep_ratio : {0.0, 1.0}) {
    ModelExportOptions options;
    options.keep_ratio = keep_ratio;
    options.metadata = {{"twist.job_id", "7"}};
    absl::StatusOr<ExportedModel> out = ExportModel(config, params, options);
    ASSERT_TRUE(out.ok()) << out.status();
    ExpectSameTensors(out->tensors, params);
    EXPECT_EQ(out->parameters, config.NumParameters());
    EXPECT_EQ(out->metadata.at("twist.job_id"), "7");
    EXPECT_EQ(out->metadata.at("twist.keep_ratio"), "1");
    EXPECT_EQ(out->metadata.at("twist.shift_correction"), "false");
    absl::StatusOr<ModelConfig> written = ConfigFromMetadata(out->metadata);
    ASSERT_TRUE(written.ok()) << written.status();
    EXPECT_EQ(written->NumParameters(), config.NumParameters());
  }
}

TEST(ModelExportTest, ASubnetworkIsTheSeededRandomOneScaledAsAsked) {
  const ModelConfig config = SmallConfig();
  Gpt full = MakeModel(config, 2);
  const NamedTensors params = FileTensors(*full);
  absl::StatusOr<SubnetUnits> units = RandomSubnet(config, 0.5, 7);
  ASSERT_TRUE(units.ok()) << units.status();
  for (PartialSumScaling scaling :
       {PartialSumScaling::kInverseKeepRatio, PartialSumScaling::kNone}) {
    ModelExportOptions options;
    options.keep_ratio = 0.5;
    options.seed = 7;
    options.scaling = scaling;
    absl::StatusOr<ExportedModel> out = ExportModel(config, params, options);
    ASSERT_TRUE(out.ok()) << out.status();
    ExpectSameTensors(out->tensors, Pruned(config, params, *units, scaling));
    EXPECT_EQ(out->metadata.at("twist.keep_ratio"), "0.5");
    EXPECT_EQ(out->metadata.at("twist.shift_correction"), "false");
    absl::StatusOr<ModelConfig> written = ConfigFromMetadata(out->metadata);
    ASSERT_TRUE(written.ok()) << written.status();
    EXPECT_EQ(out->parameters, written->NumParameters());
    EXPECT_LT(out->parameters, config.NumParameters());
  }
  // Another seed, another subnetwork.
  ModelExportOptions options;
  options.keep_ratio = 0.5;
  options.seed = 8;
  absl::StatusOr<ExportedModel> other = ExportModel(config, params, options);
  ASSERT_TRUE(other.ok()) << other.status();
  const NamedTensors with_seven =
      Pruned(config, params, *units, PartialSumScaling::kInverseKeepRatio);
  const at::Tensor* seven = with_seven.Find("transformer.h.0.mlp.c_fc.weight");
  const at::Tensor* eight =
      other->tensors.Find("transformer.h.0.mlp.c_fc.weight");
  ASSERT_TRUE(seven != nullptr && eight != nullptr);
  EXPECT_FALSE(torch::equal(*seven, *eight));
}

class ModelExportCorrectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = twist::testing::MakeTempDir();
    std::vector<uint16_t> train(1 << 13), val(1 << 10);
    for (size_t i = 0; i < train.size(); ++i) train[i] = (i * 7 + i / 13) % 256;
    for (size_t i = 0; i < val.size(); ++i) val[i] = (i * 5) % 256;
    ASSERT_TRUE(WriteTokenFile(dir_ + "/train.bin", train).ok());
    ASSERT_TRUE(WriteTokenFile(dir_ + "/val.bin", val).ok());
    DatasetMeta meta;
    meta.vocab_size = 256;
    meta.train_tokens = train.size();
    meta.val_tokens = val.size();
    meta.content_hash = "0123";
    meta.tokenizer = "bytes";
    ASSERT_TRUE(WriteDatasetMeta(dir_, meta).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
};

TEST_F(ModelExportCorrectionTest, BiasesAreCorrectedOnTheTrainingData) {
  const ModelConfig config = SmallConfig();
  Gpt full = MakeModel(config, 3);
  const NamedTensors params = FileTensors(*full);
  ModelExportOptions options;
  options.keep_ratio = 0.5;
  options.seed = 11;
  options.shift_correction = true;
  options.calibration_data = dir_;
  options.calibration_batch_size = 4;
  absl::StatusOr<ExportedModel> out = ExportModel(config, params, options);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->metadata.at("twist.shift_correction"), "true");

  // The same by hand: contributions of the full model on 4 batches of 4
  // training sequences.
  absl::StatusOr<Dataset> dataset = Dataset::Open(dir_);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  absl::StatusOr<torch::Tensor> tokens =
      CalibrationTokens(dataset->train(), 4, 4, config.block_size);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  const UnitContributions contributions =
      EstimateUnitContributions(*full, *tokens);
  absl::StatusOr<SubnetUnits> units = RandomSubnet(config, 0.5, 11);
  ASSERT_TRUE(units.ok()) << units.status();
  ExpectSameTensors(out->tensors,
                    Pruned(config, params, *units,
                           PartialSumScaling::kInverseKeepRatio,
                           &contributions),
                    1e-5);

  // Not what scaling alone gives: the output biases moved.
  options.shift_correction = false;
  absl::StatusOr<ExportedModel> scaled = ExportModel(config, params, options);
  ASSERT_TRUE(scaled.ok()) << scaled.status();
  const std::string bias = "transformer.h.0.mlp.c_proj.bias";
  EXPECT_GT((*out->tensors.Find(bias) - *scaled->tensors.Find(bias))
                .abs()
                .max()
                .item<double>(),
            1e-4);
}

TEST_F(ModelExportCorrectionTest, TheCalibrationDataMustOpen) {
  const ModelConfig config = SmallConfig();
  Gpt full = MakeModel(config, 4);
  ModelExportOptions options;
  options.shift_correction = true;
  options.calibration_data = dir_ + "/missing";
  options.calibration_batch_size = 4;
  absl::StatusOr<ExportedModel> out =
      ExportModel(config, FileTensors(*full), options);
  EXPECT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find(dir_ + "/missing"), std::string::npos)
      << out.status();
}

TEST(ModelExportTest, KeepRatioOutsideZeroToOneIsRefused) {
  const ModelConfig config = SmallConfig();
  Gpt full = MakeModel(config, 5);
  const NamedTensors params = FileTensors(*full);
  for (double keep_ratio : {-0.1, 1.5, std::nan("")}) {
    EXPECT_EQ(CheckExportKeepRatio(keep_ratio).code(),
              absl::StatusCode::kInvalidArgument)
        << keep_ratio;
    ModelExportOptions options;
    options.keep_ratio = keep_ratio;
    absl::StatusOr<ExportedModel> out = ExportModel(config, params, options);
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(out.status().message().find("keep_ratio must be in [0, 1]"),
              std::string::npos)
        << out.status();
  }
  EXPECT_TRUE(CheckExportKeepRatio(0).ok());
  EXPECT_TRUE(CheckExportKeepRatio(0.3).ok());
  EXPECT_TRUE(CheckExportKeepRatio(1).ok());
}

}  // namespace
}  // namespace twist::common
