#include "coordinator/worker_service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/rpc_util.h"
#include "common/status_macros.h"
#include "common/tensor_chunks.h"
#include "glog/logging.h"

namespace twist::coordinator {

using common::ToGrpcStatus;

WorkerServiceImpl::WorkerServiceImpl(WorkerRegistry* registry, JobManager* jobs,
                                     const common::CallAuthorizer* authorizer,
                                     Options options)
    : registry_(registry),
      jobs_(jobs),
      authorizer_(authorizer),
      options_(options) {}

#define TWIST_AUTHORIZE(context)                                \
  do {                                                          \
    grpc::Status twist_auth_ =                                  \
        authorizer_->Authorize(context, common::Role::kWorker); \
    if (!twist_auth_.ok()) return twist_auth_;                  \
  } while (false)

grpc::Status WorkerServiceImpl::Join(grpc::ServerContext* context,
                                     const twist::v1::JoinRequest* request,
                                     twist::v1::JoinResponse* response) {
  TWIST_AUTHORIZE(context);
  if (request->protocol_version() != common::kProtocolVersion) {
    return grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        absl::StrCat("worker speaks protocol ", request->protocol_version(),
                     " but this coordinator speaks ", common::kProtocolVersion,
                     ": run the same TwIST version on both"));
  }
  const std::string id = registry_->Join(*request, context->peer());
  response->set_worker_id(id);
  response->set_incarnation(jobs_->incarnation());
  response->set_heartbeat_interval_s(registry_->options().heartbeat_interval_s);
  response->set_heartbeat_timeout_s(registry_->options().heartbeat_timeout_s);
  LOG(INFO) << "worker " << id << " (" << request->name() << ", "
            << request->device() << ") joined from " << context->peer();
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Heartbeat(
    grpc::ServerContext* context, const twist::v1::HeartbeatRequest* request,
    twist::v1::HeartbeatResponse* response) {
  TWIST_AUTHORIZE(context);
  absl::Status s = registry_->Heartbeat(*request);
  if (!s.ok()) return ToGrpcStatus(s);
  response->set_incarnation(jobs_->incarnation());
  if (auto abandon = registry_->TakeAbandon(request->worker_id())) {
    response->set_abandon_assignment(true);
    response->set_abandon_job_id(abandon->first);
    response->set_abandon_round(abandon->second);
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::ReceiveAssignment(
    grpc::ServerContext* context, const twist::v1::AssignmentRequest* request,
    grpc::ServerWriter<twist::v1::AssignmentMessage>* writer) {
  TWIST_AUTHORIZE(context);
  AssignmentStream stream;
  stream.write_header = [&](const twist::v1::AssignmentHeader& header) {
    twist::v1::AssignmentMessage message;
    *message.mutable_header() = header;
    return writer->Write(message);
  };
  stream.write_tensors = [&](const common::NamedTensors& tensors) {
    return common::ForEachChunk(
        tensors, options_.chunk_bytes,
        [&](const twist::v1::TensorChunk& chunk) {
          if (context->IsCancelled())
            return absl::CancelledError("worker went away");
          twist::v1::AssignmentMessage m;
          *m.mutable_chunk() = chunk;
          if (!writer->Write(m))
            return absl::UnavailableError("stream broke mid-transfer");
          return absl::OkStatus();
        });
  };
  return ServeAssignment(*request, stream);
}

grpc::Status WorkerServiceImpl::ServeAssignment(
    const twist::v1::AssignmentRequest& request,
    const AssignmentStream& stream) {
  const double wait_s = std::clamp(request.wait_s(), 0.0, options_.max_wait_s);
  absl::StatusOr<std::shared_ptr<const Assignment>> taken =
      registry_->Take(request.worker_id(), absl::Seconds(wait_s));
  if (!taken.ok()) return ToGrpcStatus(taken.status());
  const std::shared_ptr<const Assignment>& a = *taken;
  if (a == nullptr) return grpc::Status::OK;  // no work yet: ask again

  auto abandon = [&](const std::string& why) {
    LOG(WARNING) << "assignment of job " << a->header.job_id() << " round "
                 << a->header.round() << " to worker " << request.worker_id()
                 << " failed: " << why;
    jobs_->AbandonSlot(a->header.job_id(), a->header.round(), a->header.slot(),
                       absl::StrCat("assignment not delivered: ", why));
  };
  if (!stream.write_header(a->header)) {
    abandon("stream broke before the header");
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream broke");
  }
  if (absl::Status s = stream.write_tensors(a->tensors); !s.ok()) {
    abandon(std::string(s.message()));
    return ToGrpcStatus(s);
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::SendUpdate(
    grpc::ServerContext* context,
    grpc::ServerReader<twist::v1::UpdateMessage>* reader,
    twist::v1::UpdateResponse* response) {
  TWIST_AUTHORIZE(context);
  UpdateStream stream;
  stream.read_header = [&](twist::v1::UpdateMessage* first) {
    return reader->Read(first);
  };
  stream.read_chunks = [&](common::ChunkAssembler* assembler, int64_t* bytes) {
    twist::v1::UpdateMessage message;
    while (reader->Read(&message)) {
      if (!message.has_chunk()) {
        return absl::InvalidArgumentError(
            "a second header in one update stream");
      }
      *bytes += static_cast<int64_t>(message.chunk().data().size());
      TWIST_RETURN_IF_ERROR(assembler->Add(message.chunk()));
    }
    return absl::OkStatus();
  };
  return ServeUpdate(stream, response);
}

grpc::Status WorkerServiceImpl::ServeUpdate(
    const UpdateStream& stream, twist::v1::UpdateResponse* response) {
  twist::v1::UpdateMessage message;
  if (!stream.read_header(&message) || !message.has_header()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "an update stream must start with its header");
  }
  const twist::v1::UpdateHeader header = message.header();
  if (!header.error().empty()) {
    absl::Status s = jobs_->RefuseUpdate(
        header, absl::StrCat("worker could not train: ", header.error()));
    LOG(WARNING) << "worker " << header.worker_id() << " could not train round "
                 << header.round() << ": " << header.error();
    response->set_accepted(false);
    response->set_reason(s.ok() ? "recorded" : std::string(s.message()));
    return grpc::Status::OK;
  }
  absl::StatusOr<common::NamedTensors> targets = jobs_->ExpectUpdate(header);
  if (!targets.ok()) return ToGrpcStatus(targets.status());
  common::ChunkAssembler assembler(std::move(*targets), options_.chunk_bytes);
  int64_t bytes = 0;
  absl::Status s = stream.read_chunks(&assembler, &bytes);
  if (s.ok()) s = assembler.Finish();
  if (!s.ok()) {
    jobs_->RefuseUpdate(header, absl::StrCat("malformed update: ", s.message()))
        .IgnoreError();
    return ToGrpcStatus(s);
  }
  common::NamedTensors tensors = assembler.tensors();
  if (absl::Status d = jobs_->DeliverUpdate(header, std::move(tensors), bytes);
      !d.ok()) {
    return ToGrpcStatus(d);
  }
  response->set_accepted(true);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Leave(grpc::ServerContext* context,
                                      const twist::v1::LeaveRequest* request,
                                      twist::v1::LeaveResponse*) {
  TWIST_AUTHORIZE(context);
  LOG(INFO) << "worker " << request->worker_id() << " left";
  return ToGrpcStatus(registry_->Leave(request->worker_id()));
}

}  // namespace twist::coordinator
