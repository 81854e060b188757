// Starting weights from files (common/model/weights_import.h) and Hugging
// Face GPT-2 exports (common/model/hf_gpt2.h): both naming schemes round-trip
// to the same parameters and logits, and every refusal names init_from, the
// file and what is wrong.
#include "common/model/weights_import.h"

#include <filesystem>
#include <fstream>

#include "common/model/hf_gpt2.h"
#include "common/model/model_io.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::common {
namespace {

using ::twist::testing::MakeModel;
using ::twist::testing::MakeTempDir;
using ::twist::testing::RandomTokens;

class WeightsImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    config_ = ModelConfig::Full(2, 4, 32, 16, 100);
    config_.activation = Activation::kGeluTanh;
    model_ = MakeModel(config_, 3);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) { return dir_ + "/" + name; }

  // Imports `path` into a model of `config_` and checks its logits.
  void ExpectSameModel(const std::string& path, WeightNames names) {
    absl::StatusOr<WeightsFile> file = ReadWeightsFile(path);
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ(file->names, names);
    EXPECT_EQ(file->n_layer, 2);
    EXPECT_EQ(file->n_embd, 32);
    EXPECT_EQ(file->block_size, 16);
    EXPECT_EQ(file->vocab_size, 100);
    EXPECT_EQ(file->n_head, 4);
    ASSERT_TRUE(file->activation.has_value());
    EXPECT_EQ(*file->activation, Activation::kGeluTanh);
    EXPECT_EQ(file->sha256.size(), 64u);
    absl::StatusOr<NamedTensors> weights = ImportWeights(*file, config_);
    ASSERT_TRUE(weights.ok()) << weights.status();
    Gpt loaded(config_);
    ASSERT_TRUE(LoadParameters(*loaded, *weights).ok());
    auto idx = RandomTokens(2, 16, 100, 4);
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(loaded->forward(idx).equal(model_->forward(idx)));
  }

  // The error of importing `tensors` (Hugging Face names) into config_.
  absl::Status ImportError(const NamedTensors& tensors,
                           const ModelConfig& config) {
    EXPECT_TRUE(WriteSafetensors(Path("bad.safetensors"), tensors).ok());
    absl::StatusOr<WeightsFile> file = ReadWeightsFile(Path("bad.safetensors"));
    if (!file.ok()) return file.status();
    return ImportWeights(*file, config).status();
  }

  std::string dir_;
  ModelConfig config_;
  Gpt model_{nullptr};
};

TEST_F(WeightsImportTest, NanoGptExportRoundTrips) {
  ASSERT_TRUE(SaveModel(Path("nano.safetensors"), *model_).ok());
  ExpectSameModel(Path("nano.safetensors"), WeightNames::kNanoGpt);
}

TEST_F(WeightsImportTest, HuggingFaceExportRoundTrips) {
  Metadata metadata;
  absl::StatusOr<NamedTensors> exported = ExportTensors(*model_, {}, &metadata);
  ASSERT_TRUE(exported.ok()) << exported.status();
  ASSERT_TRUE(WriteHuggingFaceModel(Path("hf"), *exported, metadata).ok());
  EXPECT_TRUE(std::filesystem::exists(Path("hf/config.json")));
  auto raw = ReadSafetensors(Path("hf/model.safetensors"));
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_TRUE(raw->tensors.Contains("wte.weight"));
  EXPECT_FALSE(raw->tensors.Contains("lm_head.weight"));
  EXPECT_EQ(raw->tensors.Find("h.0.attn.c_attn.weight")->sizes().vec(),
            (std::vector<int64_t>{32, 96}));  // Conv1D: (in, out)
  // Without this project's metadata, n_head and the activation come from
  // config.json, as for a file from the hub.
  ASSERT_TRUE(WriteSafetensors(Path("hf/model.safetensors"), raw->tensors,
                               {{"format", "pt"}})
                  .ok());
  ExpectSameModel(Path("hf/model.safetensors"), WeightNames::kHuggingFace);
}

TEST_F(WeightsImportTest, HuggingFaceConfigRefusesSubnetworks) {
  ModelConfig sub = config_;
  sub.n_head = {4, 2};
  absl::StatusOr<std::string> json = HuggingFaceConfigJson(sub);
  EXPECT_EQ(json.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(json.status().message().find("nanoGPT"), std::string::npos);
}

TEST_F(WeightsImportTest, MissingAndCorruptFilesAreRefused) {
  absl::StatusOr<WeightsFile> missing = ReadWeightsFile(Path("none"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("init_from: " + Path("none")),
            std::string::npos)
      << missing.status();
  std::ofstream(Path("junk.safetensors")) << "not a safetensors file at all";
  absl::StatusOr<WeightsFile> junk = ReadWeightsFile(Path("junk.safetensors"));
  EXPECT_EQ(junk.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(junk.status().message().find("not a readable safetensors"),
            std::string::npos)
      << junk.status();
  ASSERT_TRUE(WriteSafetensors(Path("other.safetensors"),
                               [] {
                                 NamedTensors t;
                                 t.Set("encoder.weight", torch::zeros({2, 2}));
                                 return t;
                               }())
                  .ok());
  absl::StatusOr<WeightsFile> other =
      ReadWeightsFile(Path("other.safetensors"));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(other.status().message().find("wte.weight"), std::string::npos);
}

TEST_F(WeightsImportTest, UnknownMissingAndMisshapenTensorsAreNamed) {
  const NamedTensors hf = ToHuggingFace(ParameterTensors(*model_));

  NamedTensors unknown = hf;
  unknown.Set("h.0.attn.rotary.weight", torch::zeros({3}));
  absl::Status s = ImportError(unknown, config_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("init_from: "), std::string::npos) << s;
  EXPECT_NE(s.message().find("'h.0.attn.rotary.weight'"), std::string::npos)
      << s;

  NamedTensors missing;
  for (const auto& [name, t] : hf) {
    if (name != "h.1.mlp.c_fc.bias") missing.Set(name, t);
  }
  s = ImportError(missing, config_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("lacks tensor 'h.1.mlp.c_fc.bias'"),
            std::string::npos)
      << s;

  // A file of width 32 into a model of FFN width 64 (Full gives 4C = 128).
  ModelConfig narrow = config_;
  narrow.ffn_width = {64, 64};
  s = ImportError(hf, narrow);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'h.0.mlp.c_fc.weight' of shape [32, 128]"),
            std::string::npos)
      << s;
  EXPECT_NE(s.message().find("needs [32, 64]"), std::string::npos) << s;

  NamedTensors untied = hf;
  untied.Set("lm_head.weight", torch::randn({100, 32}));
  s = ImportError(untied, config_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("lm_head.weight"), std::string::npos) << s;
}

}  // namespace
}  // namespace twist::common
