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

// A worker that could not train says why: its answer to the round.
void RecordRefusal(RoundCollector* round, const twist::v1::UpdateHeader& header,
                   twist::v1::UpdateResponse* response) {
  LOG(WARNING) << "worker " << header.worker_id() << " could not train round "
               << header.round() << ": " << header.error();
  absl::Status refused = round->Refuse(
      header, absl::StrCat("worker could not train: ", header.error()));
  if (!refused.ok()) {
    LOG(WARNING) << "refusal of worker " << header.worker_id()
                 << " not recorded: " << refused;
  }
  response->set_accepted(false);
  response->set_reason(refused.ok() ? "recorded"
                                    : std::string(refused.message()));
}

// Reads the update's tensors (the rest of `stream`) into the round's buffers
// and delivers them; a malformed or non-finite update is rejected.
absl::Status ReceiveUpdate(RoundCollector* round,
                           const twist::v1::UpdateHeader& header,
                           common::TensorStreamReader* stream) {
  TWIST_ASSIGN_OR_RETURN(common::NamedTensors targets, round->Expect(header));
  // The values are checked as they are copied out of gRPC's buffers.
  common::ChunkAssembler assembler(
      std::move(targets), {common::kChunkBytes, /*check_finite=*/true});
  absl::Status s = stream->ReadChunks(&assembler);
  if (s.ok()) s = assembler.Finish();
  if (!s.ok()) {
    const absl::Status rejected = round->Reject(
        header, absl::StrCat(assembler.non_finite() ? "update rejected: "
                                                    : "malformed update: ",
                             s.message()));
    if (!rejected.ok()) {
      LOG(WARNING) << "rejection of worker " << header.worker_id()
                   << "'s update not recorded: " << rejected;
    }
    return s;
  }
  // What travelled: the header and the tensors' bytes.
  return round->Deliver(
      header, assembler.tensors(),
      stream->data_bytes() + static_cast<int64_t>(header.ByteSizeLong()),
      /*checked_finite=*/true);
}

}  // namespace

WorkerTransferService::WorkerTransferService(
    WorkerRegistry* registry, RoundBoard* board,
    const common::CallAuthorizer* authorizer, Options options)
    : registry_(registry),
      board_(board),
      guard_(authorizer, common::Role::kWorker),
      options_(options) {
  using Self = WorkerTransferService;
  AddMethod(new grpc::internal::RpcServiceMethod(
      common::ReceiveAssignmentPath(),
      grpc::internal::RpcMethod::SERVER_STREAMING,
      new grpc::internal::ServerStreamingHandler<Self, grpc::ByteBuffer,
                                                 grpc::ByteBuffer>(
          [](Self* self, grpc::ServerContext* context,
             const grpc::ByteBuffer* request,
             grpc::ServerWriter<grpc::ByteBuffer>* writer) {
            return self->ReceiveAssignment(context, request, writer);
          },
          this)));
  AddMethod(new grpc::internal::RpcServiceMethod(
      common::SendUpdatePath(), grpc::internal::RpcMethod::CLIENT_STREAMING,
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
  const absl::Status sent = common::WriteTensorStream(
      writer, header, a->tensors, common::kAssignmentChunkField, [&] {
        if (context->IsCancelled()) {
          return absl::CancelledError("worker went away");
        }
        // A slot given up: the round has ended without it, and its
        // assignment may be the model itself, which the merge now writes.
        if (!board_->IsCurrent(a->header.incarnation(), a->header.job_id(),
                               a->header.round())) {
          return absl::AbortedError("the round ended without this slot");
        }
        return absl::OkStatus();
      });
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
  common::TensorStreamReader stream(reader, common::kUpdateChunkField,
                                    "update stream");
  twist::v1::UpdateMessage message;
  absl::StatusOr<bool> started = stream.ReadHeader(&message);
  if (!started.ok()) return finish(started.status());
  if (!*started) {
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
    RecordRefusal(round->get(), header, &response);
    return finish(absl::OkStatus());
  }
  if (absl::Status s = ReceiveUpdate(round->get(), header, &stream); !s.ok()) {
    return finish(s);
  }
  response.set_accepted(true);
  return finish(absl::OkStatus());
}

}  // namespace twist::coordinator
