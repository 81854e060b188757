// Benchmark 1: a subnetwork's tensors streamed coordinator -> worker and back
// over gRPC on loopback, with the project's TensorChunk messages, chunking and
// assembly, against raw TCP throughput measured in the same run (a plain
// socket pair moving the same bytes in the same direction).
//
//   transport_bench [--max_mb=512] [--chunk_kb=1024]
#include <ATen/ATen.h>
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "bench/bench_util.h"
#include "bench/transport_bench.grpc.pb.h"
#include "common/rpc_util.h"
#include "common/tensor_chunks.h"

namespace twist::bench {
namespace {

common::NamedTensors Payload(int64_t bytes) {
  common::NamedTensors t;
  t.Set("x", at::rand({bytes / 4}));
  return t;
}

class TransportService final : public TransportBench::Service {
 public:
  grpc::Status Download(
      grpc::ServerContext*, const DownloadRequest* request,
      grpc::ServerWriter<twist::v1::TensorChunk>* writer) override {
    if (payload_.empty() || payload_.NumBytes() != request->bytes()) {
      payload_ = Payload(request->bytes());
    }
    absl::Status s = common::ForEachChunk(
        payload_, request->chunk_bytes(),
        [&](const twist::v1::TensorChunk& chunk) {
          return writer->Write(chunk) ? absl::OkStatus()
                                      : absl::UnavailableError("broken");
        });
    return common::ToGrpcStatus(s);
  }

  grpc::Status Upload(grpc::ServerContext*,
                      grpc::ServerReader<twist::v1::TensorChunk>* reader,
                      UploadResponse* response) override {
    twist::v1::TensorChunk chunk;
    std::unique_ptr<common::ChunkAssembler> assembler;
    while (reader->Read(&chunk)) {
      if (!assembler) {
        common::NamedTensors target;
        int64_t n = 1;
        for (int64_t d : chunk.shape()) n *= d;
        target.Set(chunk.name(), at::empty({n}));
        assembler =
            std::make_unique<common::ChunkAssembler>(target, size_t{4} << 20);
      }
      if (absl::Status s = assembler->Add(chunk); !s.ok())
        return common::ToGrpcStatus(s);
    }
    response->set_bytes(assembler ? assembler->tensors().NumBytes() : 0);
    return grpc::Status::OK;
  }

 private:
  common::NamedTensors payload_;
};

// Seconds to move `bytes` from a client socket to a server socket on
// loopback, in writes of `chunk` bytes.
double RawTcpSeconds(int64_t bytes, size_t chunk) {
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  listen(listener, 1);
  std::vector<char> out(chunk, 7);
  double seconds = 0;
  std::thread receiver([&] {
    const int s = accept(listener, nullptr, nullptr);
    std::vector<char> in(chunk);
    int64_t got = 0;
    while (got < bytes) {
      const ssize_t n = read(s, in.data(), in.size());
      if (n <= 0) break;
      got += n;
    }
    close(s);
  });
  const int c = socket(AF_INET, SOCK_STREAM, 0);
  connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  const double start = Now();
  int64_t sent = 0;
  while (sent < bytes) {
    const ssize_t n =
        write(c, out.data(), std::min<int64_t>(chunk, bytes - sent));
    if (n <= 0) break;
    sent += n;
  }
  shutdown(c, SHUT_WR);
  receiver.join();
  seconds = Now() - start;
  close(c);
  close(listener);
  return seconds;
}

}  // namespace
}  // namespace twist::bench

int main(int argc, char** argv) {
  using namespace twist;
  double max_mb = 512;
  int64_t chunk_kb = 1024;
  bool sweep = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--max_mb=", 0) == 0) absl::SimpleAtod(a.substr(9), &max_mb);
    if (a.rfind("--chunk_kb=", 0) == 0)
      absl::SimpleAtoi(a.substr(11), &chunk_kb);
    if (a == "--no_sweep") sweep = false;
  }
  at::set_num_threads(1);
  bench::TransportService service;
  grpc::ServerBuilder builder;
  common::ConfigureServerBuilder(&builder);
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  auto stub = bench::TransportBench::NewStub(
      common::MakeChannel("127.0.0.1:" + std::to_string(port)));

  auto grpc_round_trip = [&](int64_t bytes, int64_t chunk) {
    // Down: the worker assembles what the coordinator streams.
    const double down = bench::MedianSeconds(3, [&] {
      grpc::ClientContext context;
      bench::DownloadRequest request;
      request.set_bytes(bytes);
      request.set_chunk_bytes(chunk);
      auto reader = stub->Download(&context, request);
      common::NamedTensors target;
      target.Set("x", at::empty({bytes / 4}));
      common::ChunkAssembler assembler(target, size_t{4} << 20);
      twist::v1::TensorChunk c;
      while (reader->Read(&c)) {
        if (!assembler.Add(c).ok()) std::abort();
      }
      if (!reader->Finish().ok() || !assembler.Finish().ok()) std::abort();
    });
    // Up: the worker streams its trained slices back.
    const common::NamedTensors payload = bench::Payload(bytes);
    const double up = bench::MedianSeconds(3, [&] {
      grpc::ClientContext context;
      bench::UploadResponse response;
      auto writer = stub->Upload(&context, &response);
      common::ForEachChunk(payload, chunk,
                           [&](const twist::v1::TensorChunk& c) {
                             return writer->Write(c)
                                        ? absl::OkStatus()
                                        : absl::UnavailableError("broken");
                           })
          .IgnoreError();
      writer->WritesDone();
      if (!writer->Finish().ok()) std::abort();
    });
    return std::make_pair(down, up);
  };

  std::printf("%8s %8s %10s %10s %10s %10s %8s\n", "MB", "chunk", "tcp GB/s",
              "down GB/s", "up GB/s", "grpc GB/s", "ratio");
  for (double mb : {1.0, 4.0, 16.0, 64.0, 256.0, 512.0}) {
    if (mb > max_mb) continue;
    const int64_t bytes = static_cast<int64_t>(mb * 1e6) / 4 * 4;
    const double tcp = bench::MedianSeconds(
        3, [&] { bench::RawTcpSeconds(bytes, chunk_kb << 10); });
    const auto [down, up] = grpc_round_trip(bytes, chunk_kb << 10);
    const double tcp_gbs = bytes / tcp / 1e9;
    const double grpc_gbs = 2.0 * bytes / (down + up) / 1e9;
    std::printf("%8.0f %7lldK %10.2f %10.2f %10.2f %10.2f %7.2fx\n", mb,
                static_cast<long long>(chunk_kb), tcp_gbs, bytes / down / 1e9,
                bytes / up / 1e9, grpc_gbs, grpc_gbs / tcp_gbs);
    std::printf(
        "JSON {\"bench\": \"transport\", \"bytes\": %lld, \"chunk_bytes\": "
        "%lld, "
        "\"tcp_gbps\": %.4f, \"down_gbps\": %.4f, \"up_gbps\": %.4f, "
        "\"grpc_gbps\": %.4f, "
        "\"ratio\": %.4f}\n",
        static_cast<long long>(bytes), static_cast<long long>(chunk_kb << 10),
        tcp_gbs, bytes / down / 1e9, bytes / up / 1e9, grpc_gbs,
        grpc_gbs / tcp_gbs);
    std::fflush(stdout);
  }
  if (sweep) {
    const int64_t bytes =
        static_cast<int64_t>(std::min(max_mb, 256.0) * 1e6) / 4 * 4;
    const double tcp =
        bench::MedianSeconds(3, [&] { bench::RawTcpSeconds(bytes, 1 << 20); });
    for (int64_t kb : {64, 256, 512, 1024, 2048, 3072}) {
      const auto [down, up] = grpc_round_trip(bytes, kb << 10);
      const double grpc_gbs = 2.0 * bytes / (down + up) / 1e9;
      std::printf("sweep %6.0f MB chunk %5lldK: %.2f GB/s (%.2fx raw TCP)\n",
                  bytes / 1e6, static_cast<long long>(kb), grpc_gbs,
                  grpc_gbs / (bytes / tcp / 1e9));
      std::printf(
          "JSON {\"bench\": \"transport_chunk_sweep\", \"bytes\": %lld, "
          "\"chunk_bytes\": %lld, "
          "\"grpc_gbps\": %.4f, \"tcp_gbps\": %.4f}\n",
          static_cast<long long>(bytes), static_cast<long long>(kb << 10),
          grpc_gbs, bytes / tcp / 1e9);
      std::fflush(stdout);
    }
  }
  server->Shutdown();
  return 0;
}
