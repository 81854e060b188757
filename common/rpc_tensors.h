// Tensor chunks on gRPC without copying tensor bytes: a chunk message is a
// ByteBuffer of two slices, a few bytes of protobuf framing and a slice that
// points into the tensor itself (kept alive until gRPC has sent it); a
// received one is decoded in place and its data copied once, into the target
// tensor. Used through raw (ByteBuffer) methods: see WorkerTransfer in
// coordinator/worker_transfer_service.h. The bytes on the wire are the same
// protobuf messages the typed services carry.
#ifndef TWIST_COMMON_RPC_TENSORS_H_
#define TWIST_COMMON_RPC_TENSORS_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/rpc_method.h>
#include <grpcpp/support/sync_stream.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/named_tensors.h"
#include "common/tensor_chunks.h"
#include "google/protobuf/message_lite.h"

namespace twist::common {

grpc::ByteBuffer ToByteBuffer(const google::protobuf::MessageLite& message);
// InvalidArgument when the bytes do not parse as `message`'s type.
absl::Status FromByteBuffer(const grpc::ByteBuffer& buffer,
                            google::protobuf::MessageLite* message);

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

// Client streams of raw messages on `channel` for the method `name`
// ("/package.Service/Method").
std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> OpenServerStream(
    grpc::ChannelInterface* channel, const char* name,
    grpc::ClientContext* context, const grpc::ByteBuffer& request);
std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> OpenClientStream(
    grpc::ChannelInterface* channel, const char* name,
    grpc::ClientContext* context, grpc::ByteBuffer* response);

}  // namespace twist::common

#endif  // TWIST_COMMON_RPC_TENSORS_H_
