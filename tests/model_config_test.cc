#include "common/model/model_config.h"

#include "gtest/gtest.h"

namespace twist::common {
namespace {

TEST(ModelConfigTest, FullGivesNanoGptLayout) {
  ModelConfig c = ModelConfig::Full(/*n_layer=*/6, /*n_head=*/8,
                                    /*n_embd=*/256, /*block_size=*/64,
                                    /*vocab_size=*/256);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.n_head, std::vector<int>(6, 8));
  EXPECT_EQ(c.ffn_width, std::vector<int>(6, 1024));
  EXPECT_TRUE(c.IsNanoGptLayout());
  EXPECT_TRUE(c.Validate().ok());
  c.n_head[2] = 4;
  EXPECT_FALSE(c.IsNanoGptLayout());
}

TEST(ModelConfigTest, DefaultIsAValidFullModel) {
  ModelConfig c;
  EXPECT_TRUE(c.Validate().ok());
  EXPECT_TRUE(c.IsNanoGptLayout());
}

TEST(ModelConfigTest, NumParametersCountsTiedEmbeddingOnce) {
  // 1 layer, C=4, H=2, D=2, F=16, T=3, V=5, by hand:
  // wte 20 + wpe 12 + ln_f 8 + ln_1/ln_2 16 + c_attn 48+12 + c_proj 16+4
  // + c_fc 64+16 + c_proj 64+4 = 284
  ModelConfig c = ModelConfig::Full(1, 2, 4, 3, 5);
  EXPECT_EQ(c.NumParameters(), 284);
}

TEST(ModelConfigTest, ValidateNamesTheBadField) {
  ModelConfig c;
  c.n_head = {4, 4};
  absl::Status s = c.Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("model.n_head"), std::string::npos) << s;
  c = ModelConfig();
  c.vocab_size = 70000;
  s = c.Validate();
  EXPECT_NE(s.message().find("model.vocab_size"), std::string::npos) << s;
  c = ModelConfig();
  c.ffn_width[3] = -1;
  s = c.Validate();
  EXPECT_NE(s.message().find("ffn_width[3]"), std::string::npos) << s;
}

TEST(ModelConfigTest, ZeroHeadsOrColumnsInALayerAreValid) {
  ModelConfig c;
  c.n_head[1] = 0;
  c.ffn_width[2] = 0;
  EXPECT_TRUE(c.Validate().ok());
}

}  // namespace
}  // namespace twist::common
