#include "coordinator/worker_transfer_service.h"

#include <grpcpp/impl/rpc_service_method.h>
#include <grpcpp/support/method_handler.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/rpc/rpc_util.h"
#include "common/rpc/tensor_streams.h"
#include "common/transport/tensor_chunks.h"
#include "common/transport/wire_chunks.h"
#include "glog/logging.h"
#include "twist/v1/worker_service.grpc.pb.h"

namespace twist::coordinator {
namespace {

using common::ToGrpcStatus;

// Reads the rest of an update stream into `assembler`, counting data bytes.
absl::Status ReadChunks(grpc::ServerReader<grpc::ByteBuffer>* reader,
                        common::ChunkAssembler* assembler, int64_t* bytes) {
  grpc::ByteBuffer buffer;
  while (reader->Read(&buffer)) {
    TWIST_ASSIGN_OR_RETURN(
        bool chunk, common::AddChunkBuffer(buffer, common::kUpdateChunkField,
                                           assembler, bytes));
    if (!chunk) {
      return absl::InvalidArgumentError("a second header in one update stream");
    }
  }
  return assembler->Finish();
}

}  // namespace

WorkerTransferService::WorkerTransferService(
    WorkerRegistry* registry, RoundBoard* board,
    const common::CallAuthorizer* authorizer, Options options)
    : registry_(registry),
      board_(board),
      guard_(authorizer, common::Role::kWorker),
      options_(options) {
  // The method paths come from the generated code of the .proto, so the two
  // cannot drift apart.
  static const std::string kReceive = common::MethodPath(
      twist::v1::WorkerTransfer::service_full_name(), "ReceiveAssignment");
  static const std::string kSend = common::MethodPath(
      twist::v1::WorkerTransfer::service_full_name(), "SendUpdate");
  using Self = WorkerTransferService;
  AddMethod(new grpc::internal::RpcServiceMethod(
      kReceive.c_str(), grpc::internal::RpcMethod::SERVER_STREAMING,
      new grpc::internal::ServerStreamingHandler<Self, grpc::ByteBuffer,
                                                 grpc::ByteBuffer>(
          [](Self* self, grpc::ServerContext* context,
             const grpc::ByteBuffer* request,
             grpc::ServerWriter<grpc::ByteBuffer>* writer) {
            return self->ReceiveAssignment(context, request, writer);
          },
          this)));
  AddMethod(new grpc::internal::RpcServiceMethod(
      kSend.c_str(), grpc::internal::RpcMethod::CLIENT_STREAMING,
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
    grpc::ServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ServerWriter<grpc::ByteBuffer>* writer) {
  if (grpc::Status denied = guard_.Check(context); !denied.ok()) return denied;
  twist::v1::AssignmentRequest request;
  if (absl::Status s = common::FromByteBuffer(*request_bytes, &request);
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  const double wait_s = std::clamp(request.wait_s(), 0.0, options_.max_wait_s);
  absl::StatusOr<std::shared_ptr<const Assignment>> taken =
      registry_->Take(request.worker_id(), absl::Seconds(wait_s));
  if (!taken.ok()) return ToGrpcStatus(taken.status());
  const std::shared_ptr<const Assignment>& a = *taken;
  if (a == nullptr) return grpc::Status::OK;  // no work yet: ask again

  twist::v1::AssignmentMessage header;
  *header.mutable_header() = a->header;
  absl::Status sent =
      writer->Write(common::ToByteBuffer(header))
          ? absl::OkStatus()
          : absl::UnavailableError("stream broke before the header");
  if (sent.ok()) {
    sent = common::ForEachChunkBuffer(
        a->tensors, common::kChunkBytes, common::kAssignmentChunkField,
        [&](grpc::ByteBuffer& chunk) {
          if (context->IsCancelled()) {
            return absl::CancelledError("worker went away");
          }
          if (!writer->Write(chunk)) {
            return absl::UnavailableError("stream broke mid-transfer");
          }
          return absl::OkStatus();
        });
  }
  if (!sent.ok()) {
    LOG(WARNING) << "assignment of job " << a->header.job_id() << " round "
                 << a->header.round() << " to worker " << request.worker_id()
                 << " failed: " << sent.message();
    absl::StatusOr<std::shared_ptr<RoundCollector>> round =
        board_->Find(a->header.incarnation(), a->header.job_id(),
                     a->header.round());
    if (round.ok()) {
      (*round)->Abandon(a->header.slot(), SlotEnd::kNotDelivered,
                        absl::StrCat("assignment not delivered: ",
                                     sent.message()));
    }
  }
  return ToGrpcStatus(sent);
}

grpc::Status WorkerTransferService::SendUpdate(
    grpc::ServerContext* context, grpc::ServerReader<grpc::ByteBuffer>* reader,
    grpc::ByteBuffer* response_bytes) {
  if (grpc::Status denied = guard_.Check(context); !denied.ok()) return denied;
  twist::v1::UpdateResponse response;
  const auto finish = [&](const absl::Status& status) {
    *response_bytes = common::ToByteBuffer(response);
    return ToGrpcStatus(status);
  };
  grpc::ByteBuffer first;
  twist::v1::UpdateMessage message;
  if (!reader->Read(&first) || !common::FromByteBuffer(first, &message).ok() ||
      !message.has_header()) {
    return finish(absl::InvalidArgumentError(
        "an update stream must start with its header"));
  }
  const twist::v1::UpdateHeader& header = message.header();
  absl::StatusOr<std::shared_ptr<RoundCollector>> round =
      board_->Find(header.incarnation(), header.job_id(), header.round());
  if (!round.ok()) return finish(round.status());
  // Whatever happens to it below, the worker has answered its assignment.
  registry_->AnswerReceived(header.worker_id());
  if (!header.error().empty()) {
    LOG(WARNING) << "worker " << header.worker_id() << " could not train round "
                 << header.round() << ": " << header.error();
    absl::Status refused = (*round)->Refuse(
        header, absl::StrCat("worker could not train: ", header.error()));
    if (!refused.ok()) {
      LOG(WARNING) << "refusal of worker " << header.worker_id()
                   << " not recorded: " << refused;
    }
    response.set_accepted(false);
    response.set_reason(refused.ok() ? "recorded"
                                     : std::string(refused.message()));
    return finish(absl::OkStatus());
  }
  absl::StatusOr<common::NamedTensors> targets = (*round)->Expect(header);
  if (!targets.ok()) return finish(targets.status());
  // The values are checked as they are copied out of gRPC's buffers.
  common::ChunkAssembler assembler(
      *std::move(targets), {common::kChunkBytes, /*check_finite=*/true});
  int64_t bytes = 0;
  if (absl::Status s = ReadChunks(reader, &assembler, &bytes); !s.ok()) {
    const absl::Status rejected = (*round)->Reject(
        header, absl::StrCat(assembler.non_finite() ? "update rejected: "
                                                    : "malformed update: ",
                             s.message()));
    if (!rejected.ok()) {
      LOG(WARNING) << "rejection of worker " << header.worker_id()
                   << "'s update not recorded: " << rejected;
    }
    return finish(s);
  }
  if (absl::Status s = (*round)->Deliver(header, assembler.tensors(), bytes,
                                         /*checked_finite=*/true);
      !s.ok()) {
    return finish(s);
  }
  response.set_accepted(true);
  return finish(absl::OkStatus());
}

}  // namespace twist::coordinator
