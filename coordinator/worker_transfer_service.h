// twist.v1.WorkerTransfer: the two bulk methods of WorkerService
// (ReceiveAssignment, SendUpdate) served as raw ByteBuffer streams, so tensor
// bytes go from the model's memory to the socket and from the socket into the
// model's memory without protobuf copies in between (common/rpc_tensors.h).
// The messages are the same protobuf messages as WorkerService's; only the
// method names differ. Workers use these; WorkerService's typed methods stay
// for other clients.
#ifndef TWIST_COORDINATOR_WORKER_TRANSFER_SERVICE_H_
#define TWIST_COORDINATOR_WORKER_TRANSFER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "coordinator/worker_service.h"

namespace twist::coordinator {

inline constexpr char kReceiveAssignmentMethod[] =
    "/twist.v1.WorkerTransfer/ReceiveAssignment";
inline constexpr char kSendUpdateMethod[] =
    "/twist.v1.WorkerTransfer/SendUpdate";

class WorkerTransferService final : public grpc::Service {
 public:
  // `worker_service` must outlive this service.
  explicit WorkerTransferService(WorkerServiceImpl* worker_service);

  grpc::Status ReceiveAssignment(grpc::ServerContext* context,
                                 const grpc::ByteBuffer* request,
                                 grpc::ServerWriter<grpc::ByteBuffer>* writer);
  grpc::Status SendUpdate(grpc::ServerContext* context,
                          grpc::ServerReader<grpc::ByteBuffer>* reader,
                          grpc::ByteBuffer* response);

 private:
  WorkerServiceImpl* const worker_service_;
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_WORKER_TRANSFER_SERVICE_H_
