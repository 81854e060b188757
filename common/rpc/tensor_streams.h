// Tensor streams on gRPC without copying tensor bytes: a chunk message is a
// ByteBuffer of two slices, a few bytes of protobuf framing and a slice that
// points into the tensor itself (kept alive until gRPC has sent it); a
// received one is decoded in place and its data copied once, into the target
// tensor. Both ends of twist.v1.WorkerTransfer (and twistctl's reading of
// JobService.ExportModel) use these on raw ByteBuffer calls; the bytes on the
// wire are exactly the protobuf messages the .proto declares, so any other
// gRPC client or server can be the other end.
#ifndef TWIST_COMMON_RPC_TENSOR_STREAMS_H_
#define TWIST_COMMON_RPC_TENSOR_STREAMS_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/rpc_method.h>
#include <grpcpp/support/sync_stream.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
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
