// gRPC WorkerService: a thin adapter from the wire to the WorkerRegistry
// (join, heartbeat, leave, mailboxes) and the JobManager (updates).
#ifndef TWIST_COORDINATOR_WORKER_SERVICE_H_
#define TWIST_COORDINATOR_WORKER_SERVICE_H_

#include <cstddef>
#include <functional>

#include "common/rpc_security.h"
#include "common/tensor_chunks.h"
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

  // The two bulk methods, whatever carries their messages (typed protobuf
  // here, raw ByteBuffers in WorkerTransferService); authorization is the
  // caller's.
  struct AssignmentStream {
    std::function<bool(const twist::v1::AssignmentHeader&)> write_header;
    std::function<absl::Status(const common::NamedTensors&)> write_tensors;
  };
  grpc::Status ServeAssignment(const twist::v1::AssignmentRequest& request,
                               const AssignmentStream& stream);
  struct UpdateStream {
    // The first message; false when the stream ended.
    std::function<bool(twist::v1::UpdateMessage*)> read_header;
    // Every following message into the assembler, counting data bytes.
    std::function<absl::Status(common::ChunkAssembler*, int64_t*)> read_chunks;
  };
  grpc::Status ServeUpdate(const UpdateStream& stream,
                           twist::v1::UpdateResponse* response);

  const common::CallAuthorizer* authorizer() const { return authorizer_; }
  const Options& options() const { return options_; }

 private:
  WorkerRegistry* const registry_;
  JobManager* const jobs_;
  const common::CallAuthorizer* const authorizer_;
  const Options options_;
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_WORKER_SERVICE_H_
