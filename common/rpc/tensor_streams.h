// Tensor streams on gRPC without copying tensor bytes: a chunk message is a
// ByteBuffer of two slices, a few bytes of protobuf framing and a slice that
// points into the tensor itself (kept alive until gRPC has sent it); a
// received one is decoded in place and its data copied once, into the target
// tensor. Both ends of twist.v1.WorkerTransfer (and twistctl's reading of
// JobService.ExportModel) use these on raw ByteBuffer calls, every stream
// read by one TensorStreamReader and written by one WriteTensorStream; the
// bytes on the wire are exactly the protobuf messages the .proto declares, so
// any other gRPC client or server can be the other end.
#ifndef TWIST_COMMON_RPC_TENSOR_STREAMS_H_
#define TWIST_COMMON_RPC_TENSOR_STREAMS_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/rpc_method.h>
#include <grpcpp/support/sync_stream.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/base/status_macros.h"
#include "common/model/named_tensors.h"
#include "common/transport/tensor_chunks.h"
#include "google/protobuf/message_lite.h"

namespace twist::common {

grpc::ByteBuffer ToByteBuffer(const google::protobuf::MessageLite& message);
// InvalidArgument when the bytes do not parse as `message`'s type.
absl::Status FromByteBuffer(const grpc::ByteBuffer& buffer,
                            google::protobuf::MessageLite* message);

// The chunk as a message of the outer type whose field `chunk_field` holds
// it, its data a slice of the tensor's memory (no copy).
grpc::ByteBuffer ChunkBuffer(const ChunkRef& chunk, int chunk_field);

// Calls `sink` with each chunk of `tensors` as a message whose field
// `chunk_field` holds it (at most `max_chunk_bytes` of data each; an empty
// tensor as one empty chunk). Tensor data is referenced, not copied.
absl::Status ForEachChunkBuffer(
    const NamedTensors& tensors, size_t max_chunk_bytes, int chunk_field,
    const std::function<absl::Status(grpc::ByteBuffer&)>& sink);

// Decodes a received message: when it is a chunk (field `chunk_field`), adds
// it to `assembler` (its error, if any) and returns true, counting its data
// bytes into `*data_bytes`; returns false for any other message (a header:
// parse it with FromByteBuffer). InvalidArgument for a malformed message.
absl::StatusOr<bool> AddChunkBuffer(const grpc::ByteBuffer& buffer,
                                    int chunk_field, ChunkAssembler* assembler,
                                    int64_t* data_bytes);

// "/<service_full_name>/<method>", the path gRPC routes a call by.
std::string MethodPath(const char* service_full_name, const char* method);

// The paths of the methods called or served on raw ByteBuffers, from the
// generated code of the .proto so the two cannot drift apart.
const char* ReceiveAssignmentPath();  // twist.v1.WorkerTransfer
const char* SendUpdatePath();         // twist.v1.WorkerTransfer
const char* ExportModelPath();        // twist.v1.JobService

// Reads one tensor stream: a header message, then chunk messages (field
// `chunk_field` of the same outer message type), each decoded in place and
// copied once, into the assembler's tensors. The source is any stream with
// `bool Read(grpc::ByteBuffer*)` (a ClientReader or a ServerReader), false
// once the stream has ended. Not thread-safe.
class TensorStreamReader {
 public:
  using ReadFn = std::function<bool(grpc::ByteBuffer*)>;

  // `stream_name` names the stream in errors, e.g. "update stream".
  TensorStreamReader(ReadFn read, int chunk_field, std::string stream_name);
  template <typename Stream>
  TensorStreamReader(Stream* stream, int chunk_field, std::string stream_name)
      : TensorStreamReader(
            [stream](grpc::ByteBuffer* buffer) { return stream->Read(buffer); },
            chunk_field, std::move(stream_name)) {}

  // Reads the first message into `message` (an AssignmentMessage,
  // UpdateMessage or ExportMessage): true when it holds a header; false when
  // the stream ended before any message (the call's status says why);
  // InvalidArgument "<stream> must start with its header" for any other
  // first message. FailedPrecondition when called twice.
  template <typename Message>
  absl::StatusOr<bool> ReadHeader(Message* message) {
    grpc::ByteBuffer buffer;
    TWIST_ASSIGN_OR_RETURN(bool read, ReadFirst(&buffer));
    if (!read) return false;
    if (!FromByteBuffer(buffer, message).ok() || !message->has_header()) {
      return NoHeaderError();
    }
    state_ = State::kChunks;
    return true;
  }

  // Reads every remaining message, each a chunk, into `assembler` until the
  // stream ends. The assembler's error (a chunk out of order, out of bounds,
  // of an unknown tensor...), InvalidArgument for a malformed message or
  // "a second header in one <stream>" for a header. Does not call
  // assembler->Finish(): end the call first, its status may say more.
  // FailedPrecondition before ReadHeader() has found the header.
  absl::Status ReadChunks(ChunkAssembler* assembler);

  // Data bytes of the chunks read so far.
  int64_t data_bytes() const { return data_bytes_; }

 private:
  absl::StatusOr<bool> ReadFirst(grpc::ByteBuffer* buffer);
  absl::Status NoHeaderError() const;

  const ReadFn read_;
  const int chunk_field_;
  const std::string stream_name_;
  enum class State { kStart, kChunks, kDone } state_ = State::kStart;
  int64_t data_bytes_ = 0;
};

// Writes one tensor stream: `header` (the outer message holding its header),
// then every chunk of `tensors` as that message type's field `chunk_field`,
// at most `max_chunk_bytes` of data each, from the tensors' memory in place.
// `write` is false once the stream is broken: Unavailable "stream broke
// before the header" or "stream broke mid-transfer". `check`, when given, is
// called before each chunk; its error ends the stream and is returned.
using WriteFn = std::function<bool(const grpc::ByteBuffer&)>;
absl::Status WriteTensorStream(const WriteFn& write,
                               const google::protobuf::MessageLite& header,
                               const NamedTensors& tensors, int chunk_field,
                               const std::function<absl::Status()>& check = {},
                               size_t max_chunk_bytes = kChunkBytes);
// The same on any stream with `bool Write(const grpc::ByteBuffer&)` (a
// ClientWriter or a ServerWriter).
template <typename Stream>
absl::Status WriteTensorStream(Stream* stream,
                               const google::protobuf::MessageLite& header,
                               const NamedTensors& tensors, int chunk_field,
                               const std::function<absl::Status()>& check = {},
                               size_t max_chunk_bytes = kChunkBytes) {
  return WriteTensorStream(
      WriteFn([stream](const grpc::ByteBuffer& b) { return stream->Write(b); }),
      header, tensors, chunk_field, check, max_chunk_bytes);
}

// Client streams of raw messages on `channel` for the method `name`
// ("/package.Service/Method").
std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> OpenServerStream(
    grpc::ChannelInterface* channel, const char* name,
    grpc::ClientContext* context, const grpc::ByteBuffer& request);
std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> OpenClientStream(
    grpc::ChannelInterface* channel, const char* name,
    grpc::ClientContext* context, grpc::ByteBuffer* response);

}  // namespace twist::common

#endif  // TWIST_COMMON_RPC_TENSOR_STREAMS_H_
