// gRPC twist.v1.WorkerService: a thin adapter from the wire to the
// WorkerRegistry (join, heartbeat, leave). The bulk path (assignments out,
// updates back) is WorkerTransferService.
#ifndef TWIST_COORDINATOR_WORKER_SERVICE_H_
#define TWIST_COORDINATOR_WORKER_SERVICE_H_

#include <cstdint>

#include "common/rpc/security.h"
#include "coordinator/worker_registry.h"
#include "twist/v1/worker_service.grpc.pb.h"

namespace twist::coordinator {

class WorkerServiceImpl final : public twist::v1::WorkerService::Service {
 public:
  // `registry` and `authorizer` must outlive the service. Every call needs
  // the worker role.
  WorkerServiceImpl(WorkerRegistry* registry, uint64_t incarnation,
                    const common::CallAuthorizer* authorizer);

  grpc::Status Join(grpc::ServerContext* context,
                    const twist::v1::JoinRequest* request,
                    twist::v1::JoinResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context,
                         const twist::v1::HeartbeatRequest* request,
                         twist::v1::HeartbeatResponse* response) override;
  grpc::Status Leave(grpc::ServerContext* context,
                     const twist::v1::LeaveRequest* request,
                     twist::v1::LeaveResponse* response) override;

 private:
  WorkerRegistry* const registry_;
  const uint64_t incarnation_;
  const common::CallGuard guard_;
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_WORKER_SERVICE_H_
