// Tests of the compressed forms of an update (common/ist/update_codec.h):
// their sizes, their error against the values they encode, error feedback
// adding up over rounds, and corrupt bytes refused.
#include "common/ist/update_codec.h"

#include <torch/torch.h>

#include "gtest/gtest.h"

namespace twist::common {
namespace {

const UpdateEncoding kInt8{UpdateCodec::kInt8};
const UpdateEncoding kInt4{UpdateCodec::kInt4};
const UpdateEncoding kTopK{UpdateCodec::kTopK, 0.02};

at::Tensor Values(std::vector<int64_t> shape, uint64_t seed = 1) {
  torch::manual_seed(seed);
  return torch::randn(shape) * 1e-3;
}

TEST(UpdateCodecTest, SizesFollowFromTheElementCountAlone) {
  EXPECT_EQ(EncodedBytes(kInt8, 1000), 4 * 4 + 1000);
  EXPECT_EQ(EncodedBytes(kInt4, 1000), 4 * 16 + 32 * 16);
  // 4096 at 2%: 82 kept; then a chunk of 904: 19 kept.
  EXPECT_EQ(EncodedBytes(kTopK, 5000), 4 * 2 + 2 * 101 + 51);
  for (const UpdateEncoding& e : {kInt8, kInt4, kTopK}) {
    for (int64_t n : {1, 63, 64, 257, 4095, 4096, 4097, 10000}) {
      const at::Tensor bytes = EncodeUpdate(Values({n}), e);
      EXPECT_EQ(bytes.scalar_type(), at::kByte);
      EXPECT_EQ(bytes.numel(), EncodedBytes(e, n)) << UpdateCodecName(e.codec) << " " << n;
    }
  }
}

TEST(UpdateCodecTest, BlockCodesAreWithinHalfAStepOfTheirValues) {
  const at::Tensor x = Values({37, 129});
  for (const auto& [e, levels, block] :
       {std::tuple<UpdateEncoding, double, int64_t>{kInt8, 127, 256},
        {kInt4, 7, 64}}) {
    const at::Tensor decoded = *DecodeUpdate(EncodeUpdate(x, e), x.sizes(), e);
    ASSERT_EQ(decoded.sizes(), x.sizes());
    const at::Tensor flat = x.reshape({-1});
    const int64_t blocks = (flat.numel() + block - 1) / block;
    at::Tensor padded = at::zeros({blocks * block});
    padded.narrow(0, 0, flat.numel()).copy_(flat);
    const at::Tensor step =
        (padded.view({blocks, block}).abs().amax(1) / levels)
            .repeat_interleave(block)
            .narrow(0, 0, flat.numel());
    const at::Tensor err = (decoded.reshape({-1}) - flat).abs();
    EXPECT_TRUE((err <= step * 0.5001).all().item<bool>())
        << UpdateCodecName(e.codec);
  }
}

TEST(UpdateCodecTest, TopKKeepsTheLargestEntriesOfEachChunk) {
  at::Tensor x = Values({2 * 4096 + 100});
  x[5] = 1.0;      // chunk 0
  x[4200] = -2.0;  // chunk 1
  x[8200] = 0.5;   // the short last chunk
  const at::Tensor d = *DecodeUpdate(EncodeUpdate(x, kTopK), x.sizes(), kTopK);
  EXPECT_FLOAT_EQ(d[5].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(d[4200].item<float>(), -2.0f);
  EXPECT_FLOAT_EQ(d[8200].item<float>(), 0.5f);
  // 82 + 82 + 2 entries are kept, every other one is zero.
  EXPECT_LE((d != 0).sum().item<int64_t>(), 82 + 82 + 2);
  // What was kept is each chunk's largest magnitudes.
  const at::Tensor chunk0 = x.narrow(0, 0, 4096).abs();
  const float threshold = std::get<0>(chunk0.topk(82)).min().item<float>();
  const at::Tensor sent0 = d.narrow(0, 0, 4096) != 0;
  EXPECT_TRUE((chunk0.masked_select(sent0) >= threshold * 0.999).all().item<bool>());
}

TEST(UpdateCodecTest, ZerosEncodeAsZeros) {
  for (const UpdateEncoding& e : {kInt8, kInt4, kTopK}) {
    const at::Tensor z = at::zeros({300});
    EXPECT_TRUE(at::equal(*DecodeUpdate(EncodeUpdate(z, e), z.sizes(), e), z));
  }
}

// Error feedback: the sender keeps what its code did not carry and adds it
// to the next round's values; over rounds, the sum of what was decoded plus
// what is still kept equals the sum of what was computed.
TEST(UpdateCodecTest, ErrorFeedbackAddsUp) {
  for (const UpdateEncoding& e : {kInt8, kInt4, kTopK}) {
    at::Tensor residual = at::zeros({3, 5000});
    at::Tensor computed_sum = at::zeros({3, 5000});
    at::Tensor applied_sum = at::zeros({3, 5000});
    for (int round = 0; round < 20; ++round) {
      const at::Tensor update = Values({3, 5000}, 100 + round);
      computed_sum += update;
      const at::Tensor x = update + residual;
      const at::Tensor sent = *DecodeUpdate(EncodeUpdate(x, e), x.sizes(), e);
      applied_sum += sent;
      residual = x - sent;
    }
    EXPECT_TRUE(at::allclose(applied_sum + residual, computed_sum, 1e-5, 1e-7))
        << UpdateCodecName(e.codec);
    // And the residual stays bounded (about one round's update), so most of
    // the sum did arrive.
    EXPECT_LT(residual.abs().max().item<float>(),
              computed_sum.abs().max().item<float>())
        << UpdateCodecName(e.codec);
  }
}

TEST(UpdateCodecTest, CorruptBytesAreRefusedSayingWhy) {
  const at::Tensor x = Values({5000});
  for (const UpdateEncoding& e : {kInt8, kInt4, kTopK}) {
    const at::Tensor good = EncodeUpdate(x, e);
    // Truncated.
    auto short_form = DecodeUpdate(good.narrow(0, 0, good.numel() - 1), x.sizes(), e);
    ASSERT_FALSE(short_form.ok());
    EXPECT_NE(short_form.status().message().find("bytes"), std::string::npos);
    // A step that is not a number.
    at::Tensor bad_step = good.clone();
    bad_step.narrow(0, 0, 4).copy_(
        at::full({1}, std::nanf(""), at::kFloat).view(at::kByte));
    auto nan = DecodeUpdate(bad_step, x.sizes(), e);
    ASSERT_FALSE(nan.ok()) << UpdateCodecName(e.codec);
    EXPECT_NE(nan.status().message().find("step 0"), std::string::npos)
        << nan.status();
  }
  // A top-k offset out of order.
  at::Tensor bytes = EncodeUpdate(x, kTopK);
  at::Tensor offsets = bytes.narrow(0, 4 * 2, 2 * 2).view(at::kShort);
  offsets.copy_(at::tensor({7, 3}, at::kShort));
  auto swapped = DecodeUpdate(bytes, x.sizes(), kTopK);
  ASSERT_FALSE(swapped.ok());
  EXPECT_NE(swapped.status().message().find("chunk 0"), std::string::npos)
      << swapped.status();
  // An int8 code of -128.
  at::Tensor int8 = EncodeUpdate(x, kInt8);
  int8[4 * 20 + 3] = 128;
  EXPECT_FALSE(DecodeUpdate(int8, x.sizes(), kInt8).ok());
}


// The CPU's one-pass loops and the tensor operations (a GPU's path) write
// the same bytes and decode the same values, and refuse the same corruption.
TEST(UpdateCodecTest, CpuLoopsEqualTheTensorOperations) {
  for (const UpdateEncoding& e : {kInt8, kInt4}) {
    for (int64_t n : {1, 63, 300, 5000, 70001}) {
      at::Tensor x = Values({n}, 40 + n);
      if (n > 300) x.narrow(0, 256, 64).zero_();  // an all-zero block
      const at::Tensor loops = EncodeUpdate(x, e, /*tensor_ops=*/false);
      const at::Tensor ops = EncodeUpdate(x, e, /*tensor_ops=*/true);
      ASSERT_TRUE(at::equal(loops, ops)) << UpdateCodecName(e.codec) << " " << n;
      const at::Tensor a = *DecodeUpdate(loops, x.sizes(), e, false);
      const at::Tensor b = *DecodeUpdate(loops, x.sizes(), e, true);
      EXPECT_TRUE(at::equal(a, b)) << UpdateCodecName(e.codec) << " " << n;
    }
    at::Tensor bad = EncodeUpdate(Values({300}), e);
    bad[4 * 5 + 7] = e.codec == UpdateCodec::kInt8 ? 128 : 0;
    const auto loops = DecodeUpdate(bad, {300}, e, false);
    const auto ops = DecodeUpdate(bad, {300}, e, true);
    ASSERT_FALSE(loops.ok());
    ASSERT_FALSE(ops.ok());
    EXPECT_EQ(loops.status().message(), ops.status().message());
  }
}

}  // namespace
}  // namespace twist::common
