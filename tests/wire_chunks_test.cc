#include "common/transport/wire_chunks.h"

#include "common/base/rng.h"
#include "common/transport/tensor_chunks.h"
#include "gtest/gtest.h"
#include "tests/chunk_messages.h"
#include "tests/test_models.h"
#include "twist/v1/worker_service.pb.h"

namespace twist::common {
namespace {

// Cuts `bytes` into spans at random places, some empty, as a transport's
// buffers would.
std::vector<Span> RandomSpans(const std::string& bytes, SplitMix64& rng) {
  std::vector<Span> spans;
  size_t at = 0;
  while (at < bytes.size()) {
    const size_t n = std::min(bytes.size() - at, rng.UniformBelow(40));
    spans.push_back({bytes.data() + at, n});
    at += n;
  }
  spans.push_back({bytes.data() + at, 0});
  return spans;
}

std::string Join(const std::vector<Span>& spans) {
  std::string out;
  for (const Span& s : spans) out.append(s.data, s.size);
  return out;
}

twist::v1::TensorChunk SampleChunk(const std::string& name,
                                   std::vector<int64_t> shape, uint64_t offset,
                                   size_t data_size) {
  twist::v1::TensorChunk chunk;
  chunk.set_name(name);
  for (int64_t d : shape) chunk.add_shape(d);
  chunk.set_dtype(twist::v1::DTYPE_BFLOAT16);
  chunk.set_offset(offset);
  std::string data(data_size, '\0');
  for (size_t i = 0; i < data_size; ++i) data[i] = static_cast<char>(i * 7 + 3);
  chunk.set_data(data);
  return chunk;
}

TEST(WireChunkTest, PrefixPlusDataIsExactlyTheProtobufEncoding) {
  for (const auto& chunk :
       {SampleChunk("transformer.h.0.attn.c_attn.weight", {384, 128}, 0, 1000),
        SampleChunk("x", {}, 0, 0),
        SampleChunk("big", {1 << 20, 3}, 123456789, 300),
        SampleChunk("", {0, 5}, 0, 0), SampleChunk("long", {7}, 1, 200000)}) {
    twist::v1::UpdateMessage message;
    *message.mutable_chunk() = chunk;
    const std::string wire =
        EncodeChunkPrefix(kUpdateChunkField, chunk.name(),
                          {chunk.shape().begin(), chunk.shape().end()},
                          chunk.dtype(), chunk.offset(), chunk.data().size()) +
        chunk.data();
    EXPECT_EQ(wire, message.SerializeAsString()) << chunk.name();
  }
}

TEST(WireChunkTest, DecodesAcrossArbitrarySpanBoundaries) {
  SplitMix64 rng(5);
  const twist::v1::TensorChunk chunk = SampleChunk("w", {10, 20}, 64, 400);
  twist::v1::AssignmentMessage message;
  *message.mutable_chunk() = chunk;
  const std::string bytes = message.SerializeAsString();
  for (int i = 0; i < 200; ++i) {
    ChunkView view;
    absl::StatusOr<bool> is_chunk = DecodeChunkMessage(
        RandomSpans(bytes, rng), kAssignmentChunkField, &view);
    ASSERT_TRUE(is_chunk.ok()) << is_chunk.status();
    ASSERT_TRUE(*is_chunk);
    EXPECT_EQ(view.name, "w");
    EXPECT_EQ(view.shape, (std::vector<int64_t>{10, 20}));
    EXPECT_EQ(view.dtype, twist::v1::DTYPE_BFLOAT16);
    EXPECT_EQ(view.offset, 64u);
    EXPECT_EQ(view.data_size, 400u);
    EXPECT_EQ(Join(view.data), chunk.data());
  }
}

TEST(WireChunkTest, DataStaysInTheReceivedBuffer) {
  twist::v1::UpdateMessage message;
  *message.mutable_chunk() = SampleChunk("w", {100}, 0, 200);
  const std::string bytes = message.SerializeAsString();
  ChunkView view;
  ASSERT_TRUE(*DecodeChunkMessage({{bytes.data(), bytes.size()}},
                                  kUpdateChunkField, &view));
  ASSERT_EQ(view.data.size(), 1u);
  EXPECT_GE(view.data[0].data, bytes.data());
  EXPECT_EQ(view.data[0].data + view.data[0].size, bytes.data() + bytes.size());
}

TEST(WireChunkTest, AHeaderIsNotAChunk) {
  twist::v1::UpdateMessage message;
  message.mutable_header()->set_worker_id("w1");
  message.mutable_header()->set_round(4);
  const std::string bytes = message.SerializeAsString();
  ChunkView view;
  absl::StatusOr<bool> is_chunk = DecodeChunkMessage(
      {{bytes.data(), bytes.size()}}, kUpdateChunkField, &view);
  ASSERT_TRUE(is_chunk.ok());
  EXPECT_FALSE(*is_chunk);
}

TEST(WireChunkTest, MalformedBytesAreInvalidArgument) {
  twist::v1::UpdateMessage message;
  *message.mutable_chunk() = SampleChunk("w", {100}, 0, 200);
  const std::string bytes = message.SerializeAsString();
  for (size_t cut :
       {size_t{1}, size_t{5}, bytes.size() / 2, bytes.size() - 1}) {
    ChunkView view;
    absl::StatusOr<bool> r =
        DecodeChunkMessage({{bytes.data(), cut}}, kUpdateChunkField, &view);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << cut;
    EXPECT_NE(r.status().message().find("malformed chunk message"),
              std::string::npos);
  }
  const std::string varint(12, '\xff');
  ChunkView view;
  EXPECT_EQ(DecodeChunkMessage({{varint.data(), varint.size()}},
                               kUpdateChunkField, &view)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(WireChunkTest, AssemblerFillsTensorsFromViews) {
  NamedTensors source;
  source.Set("a", torch::randn({33, 17}));
  source.Set("b", torch::randn({5}).to(torch::kBFloat16));
  NamedTensors targets;
  for (const auto& [name, t] : source) targets.Set(name, torch::zeros_like(t));
  ChunkAssembler assembler(targets, {128, false});
  SplitMix64 rng(9);
  absl::StatusOr<std::vector<twist::v1::TensorChunk>> chunks =
      twist::testing::SplitIntoChunks(source, 128);
  ASSERT_TRUE(chunks.ok());
  for (const twist::v1::TensorChunk& chunk : *chunks) {
    twist::v1::UpdateMessage message;
    *message.mutable_chunk() = chunk;
    const std::string bytes = message.SerializeAsString();
    ChunkView view;
    ASSERT_TRUE(
        *DecodeChunkMessage(RandomSpans(bytes, rng), kUpdateChunkField, &view));
    ASSERT_TRUE(assembler.Add(view).ok());
  }
  ASSERT_TRUE(assembler.Finish().ok());
  for (const auto& [name, t] : source)
    EXPECT_TRUE(torch::equal(*targets.Find(name), t)) << name;
}

}  // namespace
}  // namespace twist::common
