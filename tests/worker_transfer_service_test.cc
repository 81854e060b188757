// WorkerTransfer's assignment stream, served by the real service on a gRPC
// server in this process and read by a raw client: an assignment whose round
// has ended stops at its next chunk (a local_sgd assignment may be the model
// itself, which the merge writes once the round is over).
#include "coordinator/worker_transfer_service.h"

#include <ATen/ATen.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "common/ist/subnet.h"
#include "common/rpc/tensor_streams.h"
#include "coordinator/round_board.h"
#include "coordinator/round_collector.h"
#include "coordinator/worker_registry.h"
#include "gtest/gtest.h"
#include "twist/v1/worker_service.pb.h"

namespace twist::coordinator {
namespace {

TEST(WorkerTransferServiceTest, AnAssignmentStopsStreamingOnceItsRoundIsOver) {
  WorkerRegistry registry{WorkerRegistry::Options{}};
  twist::v1::JoinRequest join;
  join.set_name("only");
  join.set_device("cpu");
  join.set_threads(1);
  const std::string id = registry.Join(join, "127.0.0.1:1");
  const uint64_t incarnation = 7;
  RoundBoard board(incarnation);
  const common::CallAuthorizer open;  // no tokens, no certificates
  WorkerTransferService service(&registry, &board, &open, {});
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);

  const common::ModelConfig config = common::ModelConfig::Full(1, 2, 8, 16, 32);
  std::vector<SlotSpec> slots(1);
  slots[0].worker_id = id;
  slots[0].units = common::AllUnits(config);
  board.Publish(std::make_shared<RoundCollector>(
      incarnation, /*job_id=*/1, /*round=*/1, config, std::move(slots),
      at::kFloat, /*with_optimizer_state=*/false, nullptr));
  auto assignment = std::make_shared<Assignment>();
  assignment->header.set_incarnation(incarnation);
  assignment->header.set_job_id(1);
  assignment->header.set_round(1);
  assignment->header.set_slot(0);
  assignment->tensors.Set("big", at::zeros({16 << 20}));  // [16M], 64 chunks
  registry.Offer(id, assignment);

  const auto channel = grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  grpc::ClientContext context;
  twist::v1::AssignmentRequest request;
  request.set_worker_id(id);
  request.set_wait_s(5);
  const auto reader =
      common::OpenServerStream(channel.get(), common::ReceiveAssignmentPath(),
                               &context, common::ToByteBuffer(request));
  grpc::ByteBuffer message;
  ASSERT_TRUE(reader->Read(&message));  // the header
  ASSERT_TRUE(reader->Read(&message));  // the first chunk
  board.Publish(nullptr);               // the round ends without this slot
  int chunks = 1;
  while (reader->Read(&message)) ++chunks;
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED)
      << status.error_message();
  EXPECT_NE(status.error_message().find("round ended"), std::string::npos)
      << status.error_message();
  EXPECT_LT(chunks, 64);  // not the whole assignment
  // The check is not a stale message; the failure's own lookup is one.
  EXPECT_EQ(board.stale_messages(), 1);
  server->Shutdown();
}

}  // namespace
}  // namespace twist::coordinator
