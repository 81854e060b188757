#include "common/model/safetensors.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/ist/subnet.h"
#include "common/model/model_io.h"
#include "gtest/gtest.h"
#include "tests/test_models.h"

namespace twist::common {
namespace {

using ::twist::testing::MakeModel;
using ::twist::testing::MakeTempDir;
using ::twist::testing::RandomTokens;
using ::twist::testing::SmallConfig;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir(); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) { return dir_ + "/" + name; }

  NamedTensors Sample() {
    NamedTensors t;
    t.Set("a.weight", torch::randn({3, 5}));
    t.Set("a.bias", torch::randn({5}, torch::kFloat64));
    t.Set("half", torch::randn({2, 2}).to(torch::kBFloat16));
    t.Set("ids", torch::arange(7, torch::kLong));
    t.Set("empty", torch::zeros({0, 4}));
    t.Set("scalar", torch::tensor(2.5f));
    return t;
  }

  std::string dir_;
};

TEST_F(SafetensorsTest, RoundTripsTensorsAndMetadata) {
  const NamedTensors t = Sample();
  ASSERT_TRUE(WriteSafetensors(Path("x.safetensors"), t, {{"k", "v"}}).ok());
  auto read = ReadSafetensors(Path("x.safetensors"));
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->tensors.size(), t.size());
  for (const auto& [name, tensor] : t) {
    const at::Tensor* got = read->tensors.Find(name);
    ASSERT_NE(got, nullptr) << name;
    EXPECT_EQ(got->scalar_type(), tensor.scalar_type()) << name;
    EXPECT_TRUE(got->equal(tensor)) << name;
  }
  EXPECT_EQ(read->metadata.at("k"), "v");
  // The same bytes decode from memory.
  auto decoded = DecodeSafetensors(ReadFile(Path("x.safetensors")));
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(decoded->tensors.Find("a.weight")->equal(*t.Find("a.weight")));
}

TEST_F(SafetensorsTest, LayoutFollowsTheFormat) {
  ASSERT_TRUE(WriteSafetensors(Path("x.safetensors"), Sample()).ok());
  const std::string bytes = ReadFile(Path("x.safetensors"));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ((8 + n) % 8, 0u);  // data 8-byte aligned
  EXPECT_EQ(bytes[8], '{');
  const std::string header = bytes.substr(8, n);
  EXPECT_NE(header.find("\"a.weight\":{\"data_offsets\":[0,60],\"dtype\":"
                        "\"F32\",\"shape\":[3,5]}"),
            std::string::npos)
      << header;
  EXPECT_NE(header.find("\"dtype\":\"BF16\""), std::string::npos);
  // No temporary file is left behind.
  auto entries = std::filesystem::directory_iterator(dir_);
  EXPECT_EQ(std::distance(std::filesystem::begin(entries),
                          std::filesystem::end(entries)),
            1);
}

TEST_F(SafetensorsTest, RejectsTruncatedFiles) {
  ASSERT_TRUE(WriteSafetensors(Path("x.safetensors"), Sample()).ok());
  const std::string bytes = ReadFile(Path("x.safetensors"));
  for (size_t keep : {size_t{0}, size_t{5}, size_t{20}, bytes.size() - 1}) {
    WriteFile(Path("t.safetensors"), bytes.substr(0, keep));
    auto read = ReadSafetensors(Path("t.safetensors"));
    EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss) << keep;
    EXPECT_NE(read.status().message().find("t.safetensors is corrupt"),
              std::string::npos)
        << read.status();
  }
}

TEST_F(SafetensorsTest, RejectsInconsistentHeaders) {
  auto write_with_header = [&](const std::string& header, size_t data_bytes) {
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i)
      bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    WriteFile(Path("h.safetensors"),
              bytes + header + std::string(data_bytes, '\0'));
    return ReadSafetensors(Path("h.safetensors")).status();
  };
  struct Case {
    std::string header;
    size_t data;
    const char* message;
  } cases[] = {
      {"not json", 0, "not a JSON object"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4,
       "spans 4 bytes but its shape needs 8"},
      {R"({"a":{"dtype":"X9","shape":[1],"data_offsets":[0,4]}})", 4,
       "unknown dtype X9"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
       8, "starts at byte 2, expected 4"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 12,
       "data section has 12 bytes but the tensors cover 4"},
      {R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8,
       "ends at byte 16"},
      {R"({"a":{"dtype":"F32","shape":[1]}})", 4,
       "lacks dtype, shape or data_offsets"},
      {R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4,
       "bad dimension"},
  };
  for (const Case& c : cases) {
    absl::Status s = write_with_header(c.header, c.data);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << c.header;
    EXPECT_NE(s.message().find(c.message), std::string::npos) << s;
  }
}

TEST_F(SafetensorsTest, MissingFileIsNotFound) {
  auto read = ReadSafetensors(Path("absent.safetensors"));
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(read.status().message().find("absent.safetensors"),
            std::string::npos);
}

TEST_F(SafetensorsTest, ModelRoundTripsWithNanoGptNames) {
  const ModelConfig config = SmallConfig();
  Gpt model = MakeModel(config, 21);
  ASSERT_TRUE(SaveModel(Path("m.safetensors"), *model).ok());
  auto raw = ReadSafetensors(Path("m.safetensors"));
  ASSERT_TRUE(raw.ok());
  // nanoGPT's state dict has lm_head.weight; here it is the tied embedding.
  ASSERT_TRUE(raw->tensors.Contains("lm_head.weight"));
  EXPECT_TRUE(raw->tensors.Find("lm_head.weight")
                  ->equal(*raw->tensors.Find("transformer.wte.weight")));
  EXPECT_EQ(raw->metadata.at("twist.n_head"), "4,4,4,4");
  auto loaded = LoadModel(Path("m.safetensors"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->config(), config);
  auto idx = RandomTokens(2, 16, config.vocab_size, 3);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE((*loaded)->forward(idx).equal(model->forward(idx)));
}

TEST_F(SafetensorsTest, PaddedVocabularyRoundTrips) {
  ModelConfig config = SmallConfig();
  config.vocab_size = 320;
  config.vocab_used = 256;
  Gpt model = MakeModel(config, 23);
  ASSERT_TRUE(SaveModel(Path("p.safetensors"), *model).ok());
  Metadata metadata;
  auto loaded = LoadModel(Path("p.safetensors"), torch::kCPU, &metadata);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(metadata.at("twist.vocab_used"), "256");
  EXPECT_EQ((*loaded)->config(), config);
  EXPECT_EQ((*loaded)->config().UsedVocab(), 256);
}

TEST_F(SafetensorsTest, SubnetworkExportFoldsItsScales) {
  const ModelConfig config = SmallConfig();
  Gpt full = MakeModel(config, 22);
  SubnetUnits units = AllUnits(config);
  units.layers[1].heads = {0, 3};
  units.layers[2].ffn_columns = {1, 2, 3, 100};
  auto sub = BuildSubnetModel(
      config, units,
      *twist::testing::ExtractOne(config, ParameterTensors(*full), units),
      PartialSumScaling::kInverseKeepRatio);
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE(SaveModel(Path("s.safetensors"), **sub).ok());
  auto raw = ReadSafetensors(Path("s.safetensors"));
  EXPECT_FALSE(
      raw->tensors.Contains("lm_head.weight"));  // not nanoGPT's layout
  EXPECT_EQ(raw->metadata.at("twist.n_head"), "4,2,4,4");
  auto loaded = LoadModel(Path("s.safetensors"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto idx = RandomTokens(2, 16, config.vocab_size, 4);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose((*loaded)->forward(idx), (*sub)->forward(idx),
                              1e-5, 1e-6));
}

TEST_F(SafetensorsTest, LoadModelRejectsFilesWithoutItsMetadata) {
  ASSERT_TRUE(WriteSafetensors(Path("x.safetensors"), Sample()).ok());
  auto loaded = LoadModel(Path("x.safetensors"));
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(loaded.status().message().find("twist.n_layer"), std::string::npos);
  // Metadata that promises a shape the tensors do not have.
  const ModelConfig config = SmallConfig();
  Gpt model = MakeModel(config, 1);
  NamedTensors params = ParameterTensors(*model);
  Metadata meta = ConfigToMetadata(config);
  meta["twist.n_embd"] = "32";
  ASSERT_TRUE(WriteSafetensors(Path("y.safetensors"), params, meta).ok());
  EXPECT_EQ(LoadModel(Path("y.safetensors")).status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace twist::common
