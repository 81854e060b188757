#include "coordinator/worker_service.h"

#include "absl/strings/str_cat.h"
#include "common/rpc/rpc_util.h"
#include "glog/logging.h"

namespace twist::coordinator {

using common::ToGrpcStatus;

WorkerServiceImpl::WorkerServiceImpl(WorkerRegistry* registry,
                                     uint64_t incarnation,
                                     const common::CallAuthorizer* authorizer)
    : registry_(registry),
      incarnation_(incarnation),
      guard_(authorizer, common::Role::kWorker) {}

grpc::Status WorkerServiceImpl::Join(grpc::ServerContext* context,
                                     const twist::v1::JoinRequest* request,
                                     twist::v1::JoinResponse* response) {
  if (grpc::Status denied = guard_.Check(context); !denied.ok()) return denied;
  if (request->protocol_version() != common::kProtocolVersion) {
    return grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        absl::StrCat("worker speaks protocol ", request->protocol_version(),
                     " but this coordinator speaks ", common::kProtocolVersion,
                     ": run the same TwIST version on both"));
  }
  const std::string id = registry_->Join(*request, context->peer());
  response->set_worker_id(id);
  response->set_incarnation(incarnation_);
  response->set_heartbeat_interval_s(registry_->options().heartbeat_interval_s);
  response->set_heartbeat_timeout_s(registry_->options().heartbeat_timeout_s);
  LOG(INFO) << "worker " << id << " (" << request->name() << ", "
            << request->device() << ") joined from " << context->peer();
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Heartbeat(
    grpc::ServerContext* context, const twist::v1::HeartbeatRequest* request,
    twist::v1::HeartbeatResponse* response) {
  if (grpc::Status denied = guard_.Check(context); !denied.ok()) return denied;
  absl::Status s = registry_->Heartbeat(*request);
  if (!s.ok()) return ToGrpcStatus(s);
  response->set_incarnation(incarnation_);
  if (auto abandon = registry_->TakeAbandon(request->worker_id())) {
    response->set_abandon_assignment(true);
    response->set_abandon_job_id(abandon->first);
    response->set_abandon_round(abandon->second);
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Leave(grpc::ServerContext* context,
                                      const twist::v1::LeaveRequest* request,
                                      twist::v1::LeaveResponse*) {
  if (grpc::Status denied = guard_.Check(context); !denied.ok()) return denied;
  LOG(INFO) << "worker " << request->worker_id() << " left";
  return ToGrpcStatus(registry_->Leave(request->worker_id()));
}

}  // namespace twist::coordinator
