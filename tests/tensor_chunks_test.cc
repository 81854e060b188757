#include "common/transport/tensor_chunks.h"

#include <cmath>
#include <limits>

#include "common/transport/wire_dtype.h"
#include "gtest/gtest.h"
#include "tests/chunk_messages.h"
#include "tests/test_models.h"

namespace twist::common {
namespace {

constexpr size_t kChunk = 64;  // small chunks keep the tests fast

at::Tensor RandomBytesTensor(int64_t bytes, torch::Dtype dtype, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const int64_t n = bytes / static_cast<int64_t>(c10::elementSize(dtype));
  if (dtype == torch::kLong)
    return torch::randint(1 << 30, {n}, gen, torch::kLong);
  return torch::randn({n}, gen, torch::kFloat64).to(dtype);
}

NamedTensors EmptyLike(const NamedTensors& t) {
  NamedTensors out;
  for (const auto& [name, tensor] : t) out.Set(name, torch::empty_like(tensor));
  return out;
}

TEST(ChunkTest, RoundTripsBitForBitAroundTheChunkSize) {
  NamedTensors tensors;
  int i = 0;
  for (int64_t bytes :
       {int64_t{0}, int64_t{8}, int64_t{kChunk - 8}, int64_t{kChunk},
        int64_t{kChunk + 8}, int64_t{3 * kChunk + 16}}) {
    for (torch::Dtype dtype :
         {torch::kFloat32, torch::kFloat64, torch::kBFloat16, torch::kLong}) {
      tensors.Set("t" + std::to_string(i), RandomBytesTensor(bytes, dtype, i));
      ++i;
    }
  }
  tensors.Set("matrix", torch::randn({5, 7}));
  auto chunks = twist::testing::SplitIntoChunks(tensors, kChunk);
  ASSERT_TRUE(chunks.ok());
  ChunkAssembler assembler(EmptyLike(tensors), {kChunk, false});
  for (const auto& chunk : *chunks) {
    EXPECT_LE(chunk.data().size(), kChunk);
    ASSERT_TRUE(assembler.Add(common::ViewOf(chunk)).ok()) << assembler.Add(common::ViewOf(chunk));
  }
  ASSERT_TRUE(assembler.Finish().ok());
  for (const auto& [name, tensor] : tensors) {
    const at::Tensor& got = *assembler.tensors().Find(name);
    ASSERT_EQ(got.sizes(), tensor.sizes());
    EXPECT_EQ(0, std::memcmp(got.data_ptr(), tensor.data_ptr(),
                             tensor.numel() * tensor.element_size()))
        << name;
  }
}

// With check_finite the assembler rejects a NaN or infinity in the chunk that
// brings it, even when chunks cut elements in two (6-byte chunks of 4-byte
// floats), and accepts finite data whatever the chunking.
TEST(ChunkTest, FiniteCheckFindsNaNAndInfinityAcrossSplitElements) {
  for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity(),
                      -std::numeric_limits<float>::infinity(), 0.5f}) {
      NamedTensors tensors;
      tensors.Set("a", RandomBytesTensor(64, dtype, 1));
      at::Tensor b = RandomBytesTensor(96, dtype, 2);
      b.index_put_({7}, bad);
      tensors.Set("b", b);
      ChunkAssembler assembler(EmptyLike(tensors), {6, /*check_finite=*/true});
      absl::Status status;
      const auto chunks = twist::testing::SplitIntoChunks(tensors, 6);
      ASSERT_TRUE(chunks.ok());
      for (const auto& chunk : *chunks) {
        status = assembler.Add(ViewOf(chunk));
        if (!status.ok()) break;
      }
      if (bad == 0.5f) {
        EXPECT_TRUE(status.ok()) << status;
        EXPECT_TRUE(assembler.Finish().ok());
        EXPECT_FALSE(assembler.non_finite());
      } else {
        EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
        EXPECT_EQ(status.message(), "tensor 'b' holds NaN or infinite values");
        EXPECT_TRUE(assembler.non_finite());
        EXPECT_FALSE(assembler.Finish().ok());
      }
    }
  }
}

// A large chunk is copied and checked a piece at a time (kCheckPieceBytes):
// a NaN at either end of a piece, or in the last, partial one, is found, and
// so is one in an element that the transport's buffers split in two; finite
// data arrives byte for byte.
TEST(ChunkTest, FiniteCheckCoversEveryPieceOfALargeChunk) {
  const int64_t per_piece = kCheckPieceBytes / sizeof(float);
  const int64_t n = 3 * per_piece + 3;  // one chunk, under kChunkBytes
  const size_t split = 4 * (per_piece + 5) + 2;  // inside element per_piece + 5
  for (int64_t nan_at : {int64_t{-1}, int64_t{0}, per_piece - 1, per_piece,
                         static_cast<int64_t>(split / 4), 3 * per_piece,
                         n - 1}) {
    NamedTensors tensors;
    at::Tensor t = torch::randn({n});
    if (nan_at >= 0) t.index_put_({nan_at}, std::nanf(""));
    tensors.Set("t", t);
    ChunkAssembler assembler(EmptyLike(tensors), {kChunkBytes, true});
    ChunkView view;
    view.name = "t";
    view.shape = {n};
    view.dtype = *ToWireDType(at::kFloat);
    view.offset = 0;
    const char* bytes = static_cast<const char*>(t.data_ptr());
    view.data_size = n * sizeof(float);
    view.data.push_back({bytes, split});
    view.data.push_back({bytes + split, view.data_size - split});
    const absl::Status status = assembler.Add(view);
    if (nan_at < 0) {
      ASSERT_TRUE(status.ok()) << status;
      ASSERT_TRUE(assembler.Finish().ok());
      EXPECT_EQ(0, std::memcmp(assembler.tensors().Find("t")->data_ptr(),
                               bytes, view.data_size));
    } else {
      EXPECT_EQ(status.message(), "tensor 't' holds NaN or infinite values")
          << "NaN at " << nan_at;
      EXPECT_TRUE(assembler.non_finite());
    }
  }
}

TEST(ChunkTest, ChunkCountsAtTheBoundaries) {
  auto count = [](int64_t bytes) {
    NamedTensors t;
    t.Set("x", torch::zeros({bytes}, torch::kByte));
    return twist::testing::SplitIntoChunks(t, kChunk)->size();
  };
  EXPECT_EQ(count(0), 1u);  // an empty tensor still announces itself
  EXPECT_EQ(count(kChunk - 1), 1u);
  EXPECT_EQ(count(kChunk), 1u);
  EXPECT_EQ(count(kChunk + 1), 2u);
  EXPECT_EQ(count(10 * kChunk), 10u);
}

TEST(ChunkTest, DefaultChunkSizeIsOneMebibyte) {
  NamedTensors t;
  t.Set("big", torch::randn({3 * (1 << 18) + 5}));  // 3 MiB + 20 bytes
  auto chunks = twist::testing::SplitIntoChunks(t);
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), 4u);
  EXPECT_EQ((*chunks)[0].data().size(), size_t{1} << 20);
  EXPECT_EQ((*chunks)[3].data().size(), 20u);
  ChunkAssembler assembler(EmptyLike(t));
  for (const auto& c : *chunks) ASSERT_TRUE(assembler.Add(common::ViewOf(c)).ok());
  ASSERT_TRUE(assembler.Finish().ok());
  EXPECT_TRUE(assembler.tensors().Find("big")->equal(*t.Find("big")));
}

class ChunkRejectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tensors_.Set("w", torch::randn({4, 40}));  // 640 bytes: 10 chunks
    tensors_.Set("b", torch::randn({4}));
    chunks_ = *twist::testing::SplitIntoChunks(tensors_, kChunk);
  }

  // Feeds chunks_[0..upto) then `bad`; expects `bad` refused with `message`.
  void ExpectRejected(size_t upto, const twist::v1::TensorChunk& bad,
                      const std::string& message) {
    ChunkAssembler assembler(EmptyLike(tensors_), {kChunk, false});
    for (size_t i = 0; i < upto; ++i)
      ASSERT_TRUE(assembler.Add(common::ViewOf(chunks_[i])).ok());
    absl::Status s = assembler.Add(common::ViewOf(bad));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(message), std::string::npos) << s;
    EXPECT_NE(s.message().find("tensor '" + bad.name() + "'"),
              std::string::npos)
        << s;
    // The assembler stays failed, and the stream is not complete.
    EXPECT_FALSE(assembler.Add(common::ViewOf(chunks_[upto])).ok());
    EXPECT_FALSE(assembler.Finish().ok());
  }

  NamedTensors tensors_;
  std::vector<twist::v1::TensorChunk> chunks_;
};

TEST_F(ChunkRejectTest, UnknownName) {
  auto c = chunks_[0];
  c.set_name("nope");
  ExpectRejected(0, c, "no such tensor is expected");
}

TEST_F(ChunkRejectTest, WrongShape) {
  auto c = chunks_[0];
  c.set_shape(1, 41);
  ExpectRejected(0, c, "shape (4, 41) differs from the expected (4, 40)");
  c = chunks_[0];
  c.add_shape(1);
  ExpectRejected(0, c, "shape (4, 40, 1)");
}

TEST_F(ChunkRejectTest, WrongDtype) {
  auto c = chunks_[0];
  c.set_dtype(twist::v1::DTYPE_FLOAT64);
  ExpectRejected(0, c, "dtype DTYPE_FLOAT64 differs from the expected Float");
  c.set_dtype(static_cast<twist::v1::DType>(99));
  ExpectRejected(0, c, "differs from the expected Float");
}

TEST_F(ChunkRejectTest, OutOfOrderOrRepeatedOffsets) {
  ExpectRejected(0, chunks_[1], "offset 64 but the next byte is 0");
  ExpectRejected(2, chunks_[1], "offset 64 but the next byte is 128");
  ExpectRejected(2, chunks_[3], "offset 192 but the next byte is 128");
}

TEST_F(ChunkRejectTest, DataPastTheEnd) {
  auto c = chunks_[9];  // last chunk of "w", at offset 576
  c.set_data(c.data() + "12345678");
  ExpectRejected(9, c, "chunk carries 72 bytes, more than the limit of 64");
  c = chunks_[9];
  c.set_offset(600);
  ExpectRejected(9, c, "offset 600 but the next byte is 576");
  // A chunk within the limit that would run past the tensor's end.
  ChunkAssembler assembler(EmptyLike(tensors_), {1024, false});
  twist::v1::TensorChunk over = chunks_[10];  // "b", 16 bytes
  over.set_data(std::string(32, 'x'));
  absl::Status s = assembler.Add(common::ViewOf(over));
  EXPECT_NE(s.message().find("past the tensor's 16 bytes"), std::string::npos)
      << s;
}

TEST_F(ChunkRejectTest, ChunkForACompleteTensor) {
  ExpectRejected(10, chunks_[9], "already complete");
}

TEST_F(ChunkRejectTest, EmptyChunkForANonEmptyTensor) {
  auto c = chunks_[0];
  c.clear_data();
  ExpectRejected(0, c, "empty chunk");
}

TEST_F(ChunkRejectTest, TruncatedStreamFailsFinish) {
  ChunkAssembler assembler(EmptyLike(tensors_), {kChunk, false});
  for (size_t i = 0; i < 5; ++i) ASSERT_TRUE(assembler.Add(common::ViewOf(chunks_[i])).ok());
  absl::Status s = assembler.Finish();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("tensor 'w' is incomplete: received 320 of 640"),
            std::string::npos)
      << s;
  for (size_t i = 5; i < 10; ++i) ASSERT_TRUE(assembler.Add(common::ViewOf(chunks_[i])).ok());
  s = assembler.Finish();
  EXPECT_NE(s.message().find("tensor 'b' is incomplete: received 0 of 16"),
            std::string::npos)
      << s;
}

TEST(ChunkTest, WireDtypesRoundTrip) {
  for (auto t : {at::kFloat, at::kDouble, at::kBFloat16, at::kHalf, at::kLong,
                 at::kInt, at::kByte}) {
    EXPECT_EQ(*FromWireDType(*ToWireDType(t)), t);
  }
  EXPECT_FALSE(ToWireDType(at::kComplexFloat).ok());
  EXPECT_FALSE(FromWireDType(twist::v1::DTYPE_UNSPECIFIED).ok());
}

}  // namespace
}  // namespace twist::common
