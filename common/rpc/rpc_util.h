// Glue between absl::Status and grpc::Status, and the channel and server
// settings every TwIST process shares (message size limits, keepalive).
#ifndef TWIST_COMMON_RPC_RPC_UTIL_H_
#define TWIST_COMMON_RPC_RPC_UTIL_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/status.h"

namespace twist::common {

// The wire protocol between workers and coordinator; a worker of another
// version is refused at join.
inline constexpr int kProtocolVersion = 1;

// Largest gRPC message either side accepts: a 1 MiB tensor chunk plus its
// header, with room to spare. Set explicitly on every server and channel.
inline constexpr int kMaxMessageBytes = 4 << 20;

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// A deadline `seconds` from now, for ClientContext::set_deadline.
std::chrono::system_clock::time_point DeadlineIn(double seconds);

// Channel arguments with the message limits and keepalive pings, so a dead
// peer is noticed even on an idle connection.
grpc::ChannelArguments DefaultChannelArguments();

// An insecure channel to `target` with DefaultChannelArguments().
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target);

// Applies the shared limits to a server under construction.
void ConfigureServerBuilder(grpc::ServerBuilder* builder);

}  // namespace twist::common

#endif  // TWIST_COMMON_RPC_RPC_UTIL_H_
