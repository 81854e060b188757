// The one reader and the one writer of tensor streams (header, then chunks)
// that the worker, the coordinator and twistctl share, on in-memory streams.
#include "common/rpc/tensor_streams.h"

#include <cstring>
#include <deque>
#include <vector>

#include "absl/strings/match.h"
#include "common/transport/tensor_chunks.h"
#include "common/transport/wire_chunks.h"
#include "gtest/gtest.h"
#include "twist/v1/worker_service.pb.h"

namespace twist::common {
namespace {

constexpr size_t kSmallChunk = 64;  // several chunks per tensor

// A stream of messages already received, read like a gRPC reader.
class FakeStream {
 public:
  void Add(grpc::ByteBuffer message) {
    messages_.push_back(std::move(message));
  }
  bool Read(grpc::ByteBuffer* message) {
    if (messages_.empty()) return false;
    *message = std::move(messages_.front());
    messages_.pop_front();
    return true;
  }
  size_t size() const { return messages_.size(); }

 private:
  std::deque<grpc::ByteBuffer> messages_;
};

NamedTensors SomeTensors() {
  NamedTensors tensors;
  tensors.Set("a", torch::arange(0, 40, torch::kFloat32).reshape({5, 8}));
  tensors.Set("b", torch::arange(0, 7, torch::kFloat64));
  tensors.Set("empty", torch::zeros({0}, torch::kFloat32));
  return tensors;
}

NamedTensors ZerosLike(const NamedTensors& tensors) {
  NamedTensors out;
  for (const auto& [name, t] : tensors) out.Set(name, torch::zeros_like(t));
  return out;
}

int64_t Bytes(const NamedTensors& tensors) {
  int64_t bytes = 0;
  for (const auto& [name, t] : tensors) bytes += t.numel() * t.element_size();
  return bytes;
}

twist::v1::UpdateMessage Header(int32_t round) {
  twist::v1::UpdateMessage message;
  message.mutable_header()->set_worker_id("w1");
  message.mutable_header()->set_round(round);
  return message;
}

// Writes `header` and the chunks of `tensors` into `stream`.
absl::Status WriteTo(FakeStream* stream, const twist::v1::UpdateMessage& header,
                     const NamedTensors& tensors) {
  return WriteTensorStream(
      [&](const grpc::ByteBuffer& b) {
        stream->Add(b);
        return true;
      },
      header, tensors, kUpdateChunkField, {}, kSmallChunk);
}

// A chunk message built by protobuf, with whatever fields the test wants.
grpc::ByteBuffer ChunkMessage(const std::string& name,
                              const std::vector<int64_t>& shape,
                              uint64_t offset, const std::string& data) {
  twist::v1::UpdateMessage message;
  twist::v1::TensorChunk* chunk = message.mutable_chunk();
  chunk->set_name(name);
  for (int64_t d : shape) chunk->add_shape(d);
  chunk->set_dtype(twist::v1::DTYPE_FLOAT32);
  chunk->set_offset(offset);
  chunk->set_data(data);
  return ToByteBuffer(message);
}

TEST(TensorStreamReaderTest, ReadsWhatTheWriterWrote) {
  const NamedTensors sent = SomeTensors();
  FakeStream stream;
  ASSERT_TRUE(WriteTo(&stream, Header(3), sent).ok());
  EXPECT_GT(stream.size(), 3u);  // a header and several chunks

  const NamedTensors targets = ZerosLike(sent);
  TensorStreamReader reader(&stream, kUpdateChunkField, "update stream");
  twist::v1::UpdateMessage message;
  absl::StatusOr<bool> started = reader.ReadHeader(&message);
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_TRUE(*started);
  EXPECT_EQ(message.header().worker_id(), "w1");
  EXPECT_EQ(message.header().round(), 3);
  ChunkAssembler assembler(targets, {kSmallChunk, false});
  ASSERT_TRUE(reader.ReadChunks(&assembler).ok());
  ASSERT_TRUE(assembler.Finish().ok()) << assembler.Finish();
  EXPECT_EQ(reader.data_bytes(), Bytes(sent));
  for (const auto& [name, tensor] : sent) {
    // The data landed in the targets' own memory.
    const at::Tensor& target = *targets.Find(name);
    EXPECT_EQ(assembler.tensors().Find(name)->data_ptr(), target.data_ptr());
    EXPECT_TRUE(torch::equal(target, tensor)) << name;
  }
}

TEST(TensorStreamReaderTest, AnEmptyStreamHasNoHeader) {
  FakeStream stream;
  TensorStreamReader reader(&stream, kUpdateChunkField, "update stream");
  twist::v1::UpdateMessage message;
  absl::StatusOr<bool> started = reader.ReadHeader(&message);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_FALSE(*started);
  ChunkAssembler assembler(SomeTensors());
  EXPECT_EQ(reader.ReadChunks(&assembler).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(TensorStreamReaderTest, RefusesAStreamThatStartsWithAChunk) {
  FakeStream stream;
  stream.Add(ChunkMessage("b", {7}, 0, std::string(8, '\0')));
  TensorStreamReader reader(&stream, kUpdateChunkField, "update stream");
  twist::v1::UpdateMessage message;
  absl::StatusOr<bool> started = reader.ReadHeader(&message);
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(started.status().message(),
            "update stream must start with its header");
  // Nothing more is read from a stream without its header.
  ChunkAssembler assembler(SomeTensors());
  EXPECT_EQ(reader.ReadChunks(&assembler).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(TensorStreamReaderTest, RefusesAFirstMessageThatDoesNotParse) {
  FakeStream stream;
  grpc::Slice junk(std::string("\xff\xff\xff", 3));
  stream.Add(grpc::ByteBuffer(&junk, 1));
  TensorStreamReader reader(&stream, kAssignmentChunkField,
                            "assignment stream");
  twist::v1::AssignmentMessage message;
  absl::StatusOr<bool> started = reader.ReadHeader(&message);
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.status().message(),
            "assignment stream must start with its header");
}

TEST(TensorStreamReaderTest, RefusesASecondHeader) {
  const NamedTensors sent = SomeTensors();
  FakeStream stream;
  ASSERT_TRUE(WriteTo(&stream, Header(1), sent).ok());
  stream.Add(ToByteBuffer(Header(2)));
  TensorStreamReader reader(&stream, kUpdateChunkField, "update stream");
  twist::v1::UpdateMessage message;
  ASSERT_TRUE(*reader.ReadHeader(&message));
  ChunkAssembler assembler(ZerosLike(sent), {kSmallChunk, false});
  const absl::Status s = reader.ReadChunks(&assembler);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "a second header in one update stream");
  // The header was read, so the first one still describes the stream.
  EXPECT_EQ(message.header().round(), 1);
}

TEST(TensorStreamReaderTest, RefusesAChunkOutOfBounds) {
  FakeStream stream;
  stream.Add(ToByteBuffer(Header(1)));
  // "b" holds 7 doubles (56 bytes); this chunk claims float32 at byte 52.
  twist::v1::UpdateMessage message;
  twist::v1::TensorChunk* chunk = message.mutable_chunk();
  chunk->set_name("b");
  chunk->add_shape(7);
  chunk->set_dtype(twist::v1::DTYPE_FLOAT64);
  chunk->set_offset(0);
  chunk->set_data(std::string(48, '\0'));
  stream.Add(ToByteBuffer(message));
  chunk->set_offset(48);
  chunk->set_data(std::string(16, '\0'));  // 8 bytes past the end
  stream.Add(ToByteBuffer(message));
  stream.Add(ChunkMessage("a", {5, 8}, 0, std::string(4, '\0')));
  TensorStreamReader reader(&stream, kUpdateChunkField, "update stream");
  twist::v1::UpdateMessage header;
  ASSERT_TRUE(*reader.ReadHeader(&header));
  ChunkAssembler assembler(ZerosLike(SomeTensors()));
  const absl::Status s = reader.ReadChunks(&assembler);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "b")) << s;
  EXPECT_EQ(stream.size(), 1u) << "read on after a bad chunk";
}

TEST(TensorStreamReaderTest, RefusesAMalformedChunk) {
  FakeStream stream;
  stream.Add(ToByteBuffer(Header(1)));
  grpc::Slice junk(std::string("\x12\x7f\x01", 3));  // a chunk cut short
  stream.Add(grpc::ByteBuffer(&junk, 1));
  TensorStreamReader reader(&stream, kUpdateChunkField, "update stream");
  twist::v1::UpdateMessage header;
  ASSERT_TRUE(*reader.ReadHeader(&header));
  ChunkAssembler assembler(ZerosLike(SomeTensors()));
  EXPECT_EQ(reader.ReadChunks(&assembler).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TensorStreamReaderTest, ReadsTheHeaderOnce) {
  FakeStream stream;
  ASSERT_TRUE(WriteTo(&stream, Header(1), SomeTensors()).ok());
  TensorStreamReader reader(&stream, kUpdateChunkField, "update stream");
  twist::v1::UpdateMessage message;
  ASSERT_TRUE(*reader.ReadHeader(&message));
  EXPECT_EQ(reader.ReadHeader(&message).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(TensorStreamWriterTest, ChunksPointIntoTheTensors) {
  NamedTensors tensors;
  tensors.Set("a", torch::arange(0, 64, torch::kFloat32));
  std::vector<grpc::ByteBuffer> written;
  ASSERT_TRUE(WriteTensorStream(
                  [&](const grpc::ByteBuffer& b) {
                    written.push_back(b);
                    return true;
                  },
                  Header(1), tensors, kUpdateChunkField, {}, kSmallChunk)
                  .ok());
  ASSERT_EQ(written.size(), 1u + 256 / kSmallChunk);
  const char* base = static_cast<const char*>(tensors.Find("a")->data_ptr());
  for (size_t i = 1; i < written.size(); ++i) {
    std::vector<grpc::Slice> slices;
    ASSERT_TRUE(written[i].Dump(&slices).ok());
    ASSERT_EQ(slices.size(), 2u);  // framing, then the tensor's own bytes
    EXPECT_EQ(reinterpret_cast<const char*>(slices[1].begin()),
              base + (i - 1) * kSmallChunk);
  }
}

TEST(TensorStreamWriterTest, SaysWhereTheStreamBroke) {
  const NamedTensors tensors = SomeTensors();
  int writes = 0;
  auto broken_after = [&](int n) {
    return [&writes, n](const grpc::ByteBuffer&) { return writes++ < n; };
  };
  absl::Status s =
      WriteTensorStream(broken_after(0), Header(1), tensors, kUpdateChunkField);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "stream broke before the header");
  writes = 0;
  s = WriteTensorStream(broken_after(2), Header(1), tensors, kUpdateChunkField,
                        {}, kSmallChunk);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "stream broke mid-transfer");
  EXPECT_EQ(writes, 3);
}

TEST(TensorStreamWriterTest, StopsWhenTheCheckFails) {
  FakeStream stream;
  int checks = 0;
  const absl::Status s = WriteTensorStream(
      [&](const grpc::ByteBuffer& b) {
        stream.Add(b);
        return true;
      },
      Header(1), SomeTensors(), kUpdateChunkField,
      [&] {
        return ++checks > 2 ? absl::CancelledError("receiver went away")
                            : absl::OkStatus();
      },
      kSmallChunk);
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(s.message(), "receiver went away");
  EXPECT_EQ(stream.size(), 3u);  // the header and two chunks
}

TEST(TensorStreamPathsTest, ComeFromTheServices) {
  EXPECT_STREQ(ReceiveAssignmentPath(),
               "/twist.v1.WorkerTransfer/ReceiveAssignment");
  EXPECT_STREQ(SendUpdatePath(), "/twist.v1.WorkerTransfer/SendUpdate");
  EXPECT_STREQ(ExportModelPath(), "/twist.v1.JobService/ExportModel");
}

}  // namespace
}  // namespace twist::common
