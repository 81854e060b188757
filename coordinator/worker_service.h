// gRPC WorkerService: a thin adapter from the wire to the WorkerRegistry
// (join, heartbeat, leave, mailboxes) and the JobManager (updates).
#ifndef TWIST_COORDINATOR_WORKER_SERVICE_H_
#define TWIST_COORDINATOR_WORKER_SERVICE_H_

#include <cstddef>

#include "common/rpc_security.h"
#include "coordinator/job_manager.h"
#include "coordinator/worker_registry.h"
#include "twist/v1/worker_service.grpc.pb.h"

namespace twist::coordinator {

class WorkerServiceImpl final : public twist::v1::WorkerService::Service {
 public:
  struct Options {
    size_t chunk_bytes = size_t{1} << 20;  // tensor bytes per streamed message
    double max_wait_s = 30;                // longest ReceiveAssignment hold
  };

  // `registry`, `jobs` and `authorizer` must outlive the service. Every call
  // needs the worker role.
  WorkerServiceImpl(WorkerRegistry* registry, JobManager* jobs,
                    const common::CallAuthorizer* authorizer, Options options);

  grpc::Status Join(grpc::ServerContext* context,
                    const twist::v1::JoinRequest* request,
                    twist::v1::JoinResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context,
                         const twist::v1::HeartbeatRequest* request,
                         twist::v1::HeartbeatResponse* response) override;
  grpc::Status ReceiveAssignment(
      grpc::ServerContext* context, const twist::v1::AssignmentRequest* request,
      grpc::ServerWriter<twist::v1::AssignmentMessage>* writer) override;
  grpc::Status SendUpdate(grpc::ServerContext* context,
                          grpc::ServerReader<twist::v1::UpdateMessage>* reader,
                          twist::v1::UpdateResponse* response) override;
  grpc::Status Leave(grpc::ServerContext* context,
                     const twist::v1::LeaveRequest* request,
                     twist::v1::LeaveResponse* response) override;

 private:
  WorkerRegistry* const registry_;
  JobManager* const jobs_;
  const common::CallAuthorizer* const authorizer_;
  const Options options_;
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_WORKER_SERVICE_H_
