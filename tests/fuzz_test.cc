// Random bytes and random mutations of valid messages fed to every decoder
// that takes input from the network or from disk: tensor chunks (into the
// assembler), announced tensor lists (into AllocateTensors), update and
// assignment streams (protobuf parsing) and safetensors files. Built with
// AddressSanitizer (twist_fuzz_test): a crash, an out-of-bounds access or a
// use after free fails the test; errors returned as Status are fine.
#include <ATen/ATen.h>

#include "common/base/rng.h"
#include "common/model/safetensors.h"
#include "common/transport/subnet_proto.h"
#include "common/transport/tensor_chunks.h"
#include "common/transport/wire_chunks.h"
#include "gtest/gtest.h"
#include "tests/chunk_messages.h"
#include "twist/v1/worker_service.pb.h"

namespace twist::common {
namespace {

constexpr int kIterations = 20000;

std::string RandomBytes(SplitMix64& rng, size_t max_size) {
  std::string out(rng.UniformBelow(max_size + 1), '\0');
  for (char& c : out) c = static_cast<char>(rng.Next());
  return out;
}

// Flips, overwrites, inserts, deletes or truncates a few bytes.
std::string Mutate(std::string bytes, SplitMix64& rng) {
  const int edits = 1 + static_cast<int>(rng.UniformBelow(4));
  for (int e = 0; e < edits && !bytes.empty(); ++e) {
    const size_t at = rng.UniformBelow(bytes.size());
    switch (rng.UniformBelow(5)) {
      case 0:
        bytes[at] ^= static_cast<char>(1 << rng.UniformBelow(8));
        break;
      case 1:
        bytes[at] = static_cast<char>(rng.Next());
        break;
      case 2:
        bytes.insert(at, 1 + rng.UniformBelow(8),
                     static_cast<char>(rng.Next()));
        break;
      case 3:
        bytes.erase(at, 1 + rng.UniformBelow(8));
        break;
      case 4:
        bytes.resize(at);
        break;
    }
  }
  return bytes;
}

NamedTensors Targets() {
  NamedTensors t;
  t.Set("w", at::zeros({8, 16}));
  t.Set("b", at::zeros({16}));
  t.Set("ids", at::zeros({5}, at::kLong));
  t.Set("empty", at::zeros({0, 3}));
  return t;
}

TEST(DecoderFuzzTest, ChunkAssemblerSurvivesRandomAndMutatedChunks) {
  SplitMix64 rng(1);
  NamedTensors source = Targets();
  source.Find("w")->normal_();
  const std::vector<twist::v1::TensorChunk> valid =
      *twist::testing::SplitIntoChunks(source, 64);
  int accepted = 0;
  for (int i = 0; i < kIterations; ++i) {
    ChunkAssembler assembler(Targets(), {64, false});
    const int n = 1 + static_cast<int>(rng.UniformBelow(valid.size() + 2));
    for (int k = 0; k < n; ++k) {
      twist::v1::TensorChunk chunk;
      const std::string bytes =
          rng.UniformBelow(3) == 0
              ? RandomBytes(rng, 200)
              : Mutate(
                    valid[rng.UniformBelow(valid.size())].SerializeAsString(),
                    rng);
      if (!chunk.ParseFromString(bytes)) continue;
      accepted += assembler.Add(common::ViewOf(chunk)).ok();
    }
    (void)assembler.Finish();
  }
  EXPECT_GT(accepted, 0);  // the mutations reach past parsing
}

// The in-place decoder sees mutated and random messages cut into random
// spans; whatever protobuf reads as a chunk, it must read the same way.
TEST(DecoderFuzzTest, InPlaceChunkDecoderAgreesWithProtobufOrFails) {
  SplitMix64 rng(5);
  NamedTensors source = Targets();
  source.Find("w")->normal_();
  const std::vector<twist::v1::TensorChunk> valid =
      *twist::testing::SplitIntoChunks(source, 64);
  int agreed = 0;
  for (int i = 0; i < kIterations; ++i) {
    twist::v1::UpdateMessage message;
    *message.mutable_chunk() = valid[rng.UniformBelow(valid.size())];
    const std::string bytes = rng.UniformBelow(4) == 0
                                  ? RandomBytes(rng, 200)
                                  : Mutate(message.SerializeAsString(), rng);
    std::vector<Span> spans;
    for (size_t at = 0; at < bytes.size();) {
      const size_t n = std::min(bytes.size() - at, 1 + rng.UniformBelow(48));
      spans.push_back({bytes.data() + at, n});
      at += n;
    }
    ChunkView view;
    absl::StatusOr<bool> is_chunk =
        DecodeChunkMessage(spans, kUpdateChunkField, &view);
    twist::v1::UpdateMessage parsed;
    if (!is_chunk.ok() || !*is_chunk || !parsed.ParseFromString(bytes) ||
        !parsed.has_chunk()) {
      continue;
    }
    const twist::v1::TensorChunk& c = parsed.chunk();
    std::string data;
    for (const Span& s : view.data) data.append(s.data, s.size);
    ASSERT_EQ(view.name, c.name());
    ASSERT_EQ(view.shape,
              std::vector<int64_t>(c.shape().begin(), c.shape().end()));
    ASSERT_EQ(view.dtype, c.dtype());
    ASSERT_EQ(view.offset, c.offset());
    ASSERT_EQ(data, c.data());
    ChunkAssembler assembler(Targets(), {64, false});
    (void)assembler.Add(view);
    ++agreed;
  }
  EXPECT_GT(agreed, 100);
}

TEST(DecoderFuzzTest, AnnouncedTensorListsAllocateOrFail) {
  SplitMix64 rng(2);
  twist::v1::AssignmentHeader header;
  *header.mutable_tensors() = DescribeTensors(Targets());
  header.set_round(3);
  const std::string valid = header.SerializeAsString();
  int allocated = 0;
  for (int i = 0; i < kIterations; ++i) {
    twist::v1::AssignmentHeader h;
    const std::string bytes =
        i % 4 == 0 ? RandomBytes(rng, 300) : Mutate(valid, rng);
    if (!h.ParseFromString(bytes)) continue;
    auto t = AllocateTensors(h.tensors(), /*max_bytes=*/int64_t{1} << 26);
    if (t.ok()) {
      ++allocated;
      EXPECT_LE(t->NumBytes(), int64_t{1} << 26);
    }
    (void)FromProto(h.units());
  }
  EXPECT_GT(allocated, 0);
}

TEST(DecoderFuzzTest, UpdateAndAssignmentStreamsParseOrFail) {
  SplitMix64 rng(3);
  twist::v1::UpdateMessage update;
  update.mutable_header()->set_worker_id("w1");
  update.mutable_header()->set_round(2);
  twist::v1::AssignmentMessage assignment;
  *assignment.mutable_chunk() = (*twist::testing::SplitIntoChunks(Targets(), 64))[0];
  for (int i = 0; i < kIterations; ++i) {
    twist::v1::UpdateMessage u;
    twist::v1::AssignmentMessage a;
    (void)u.ParseFromString(Mutate(update.SerializeAsString(), rng));
    (void)a.ParseFromString(Mutate(assignment.SerializeAsString(), rng));
    (void)u.ParseFromString(RandomBytes(rng, 256));
  }
}

TEST(DecoderFuzzTest, SafetensorsDecoderSurvivesMutatedFiles) {
  SplitMix64 rng(4);
  const std::string path = ::testing::TempDir() + "/fuzz.safetensors";
  NamedTensors source = Targets();
  ASSERT_TRUE(WriteSafetensors(path, source, {{"k", "v"}}).ok());
  std::string valid;
  {
    FILE* f = std::fopen(path.c_str(), "rb");
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) valid.append(buf, n);
    std::fclose(f);
  }
  ASSERT_TRUE(DecodeSafetensors(valid).ok());
  int decoded = 0;
  for (int i = 0; i < kIterations; ++i) {
    std::string bytes = i % 5 == 0 ? RandomBytes(rng, 600) : Mutate(valid, rng);
    if (i % 7 == 0 && bytes.size() >= 8) {
      // A header length pointing anywhere.
      const uint64_t n = rng.Next() >> rng.UniformBelow(64);
      for (int b = 0; b < 8; ++b) bytes[b] = static_cast<char>(n >> (8 * b));
    }
    auto contents = DecodeSafetensors(bytes);
    if (contents.ok()) {
      ++decoded;
      for (const auto& [name, t] : contents->tensors)
        EXPECT_TRUE(t.defined()) << name;
    } else {
      EXPECT_EQ(contents.status().code(), absl::StatusCode::kDataLoss)
          << contents.status();
    }
  }
  EXPECT_GT(decoded, 0);
}

}  // namespace
}  // namespace twist::common
