#include "coordinator/worker_transfer_service.h"

#include <grpcpp/impl/rpc_service_method.h>
#include <grpcpp/support/method_handler.h>

#include "common/rpc_tensors.h"
#include "common/rpc_util.h"
#include "common/wire_chunks.h"

namespace twist::coordinator {

WorkerTransferService::WorkerTransferService(WorkerServiceImpl* worker_service)
    : worker_service_(worker_service) {
  using Self = WorkerTransferService;
  AddMethod(new grpc::internal::RpcServiceMethod(
      kReceiveAssignmentMethod, grpc::internal::RpcMethod::SERVER_STREAMING,
      new grpc::internal::ServerStreamingHandler<Self, grpc::ByteBuffer,
                                                 grpc::ByteBuffer>(
          [](Self* self, grpc::ServerContext* context,
             const grpc::ByteBuffer* request,
             grpc::ServerWriter<grpc::ByteBuffer>* writer) {
            return self->ReceiveAssignment(context, request, writer);
          },
          this)));
  AddMethod(new grpc::internal::RpcServiceMethod(
      kSendUpdateMethod, grpc::internal::RpcMethod::CLIENT_STREAMING,
      new grpc::internal::ClientStreamingHandler<Self, grpc::ByteBuffer,
                                                 grpc::ByteBuffer>(
          [](Self* self, grpc::ServerContext* context,
             grpc::ServerReader<grpc::ByteBuffer>* reader,
             grpc::ByteBuffer* response) {
            return self->SendUpdate(context, reader, response);
          },
          this)));
}

grpc::Status WorkerTransferService::ReceiveAssignment(
    grpc::ServerContext* context, const grpc::ByteBuffer* request,
    grpc::ServerWriter<grpc::ByteBuffer>* writer) {
  if (grpc::Status a = worker_service_->authorizer()->Authorize(
          context, common::Role::kWorker);
      !a.ok()) {
    return a;
  }
  twist::v1::AssignmentRequest parsed;
  if (absl::Status s = common::FromByteBuffer(*request, &parsed); !s.ok()) {
    return common::ToGrpcStatus(s);
  }
  WorkerServiceImpl::AssignmentStream stream;
  stream.write_header = [&](const twist::v1::AssignmentHeader& header) {
    twist::v1::AssignmentMessage message;
    *message.mutable_header() = header;
    grpc::ByteBuffer buffer = common::ToByteBuffer(message);
    return writer->Write(buffer);
  };
  stream.write_tensors = [&](const common::NamedTensors& tensors) {
    return common::ForEachChunkBuffer(
        tensors, worker_service_->options().chunk_bytes,
        common::kAssignmentChunkField, [&](grpc::ByteBuffer& chunk) {
          if (context->IsCancelled())
            return absl::CancelledError("worker went away");
          if (!writer->Write(chunk))
            return absl::UnavailableError("stream broke mid-transfer");
          return absl::OkStatus();
        });
  };
  return worker_service_->ServeAssignment(parsed, stream);
}

grpc::Status WorkerTransferService::SendUpdate(
    grpc::ServerContext* context, grpc::ServerReader<grpc::ByteBuffer>* reader,
    grpc::ByteBuffer* response) {
  if (grpc::Status a = worker_service_->authorizer()->Authorize(
          context, common::Role::kWorker);
      !a.ok()) {
    return a;
  }
  WorkerServiceImpl::UpdateStream stream;
  stream.read_header = [&](twist::v1::UpdateMessage* first) {
    grpc::ByteBuffer buffer;
    return reader->Read(&buffer) && common::FromByteBuffer(buffer, first).ok();
  };
  stream.read_chunks = [&](common::ChunkAssembler* assembler, int64_t* bytes) {
    grpc::ByteBuffer buffer;
    while (reader->Read(&buffer)) {
      absl::StatusOr<bool> chunk = common::AddChunkBuffer(
          buffer, common::kUpdateChunkField, assembler, bytes);
      if (!chunk.ok()) return chunk.status();
      if (!*chunk)
        return absl::InvalidArgumentError(
            "a second header in one update stream");
    }
    return absl::OkStatus();
  };
  twist::v1::UpdateResponse typed;
  grpc::Status status = worker_service_->ServeUpdate(stream, &typed);
  *response = common::ToByteBuffer(typed);
  return status;
}

}  // namespace twist::coordinator
