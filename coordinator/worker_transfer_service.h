// gRPC twist.v1.WorkerTransfer (proto/twist/v1/worker_service.proto): the
// bulk path. Assignments are taken from the worker's mailbox in the
// WorkerRegistry and streamed out; updates find their round on the
// RoundBoard. Both methods are served on raw ByteBuffers so tensor bytes go
// from the model's memory to the socket and from the socket into preallocated
// tensors without protobuf copies in between (common/rpc/tensor_streams.h);
// the bytes are the .proto's messages, so any generated client can call them.
#ifndef TWIST_COORDINATOR_WORKER_TRANSFER_SERVICE_H_
#define TWIST_COORDINATOR_WORKER_TRANSFER_SERVICE_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/service_type.h>

#include "common/rpc/security.h"
#include "coordinator/round_board.h"
#include "coordinator/worker_registry.h"

namespace twist::coordinator {

class WorkerTransferService final : public grpc::Service {
 public:
  struct Options {
    double max_wait_s = 30;  // longest hold of a ReceiveAssignment call
  };

  // `registry`, `board` and `authorizer` must outlive the service. Every
  // call needs the worker role.
  WorkerTransferService(WorkerRegistry* registry, RoundBoard* board,
                        const common::CallAuthorizer* authorizer,
                        Options options);

  grpc::Status ReceiveAssignment(grpc::ServerContext* context,
                                 const grpc::ByteBuffer* request,
                                 grpc::ServerWriter<grpc::ByteBuffer>* writer);
  grpc::Status SendUpdate(grpc::ServerContext* context,
                          grpc::ServerReader<grpc::ByteBuffer>* reader,
                          grpc::ByteBuffer* response);

 private:
  WorkerRegistry* const registry_;
  RoundBoard* const board_;
  const common::CallGuard guard_;
  const Options options_;
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_WORKER_TRANSFER_SERVICE_H_
