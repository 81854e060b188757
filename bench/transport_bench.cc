// Benchmark 1: a subnetwork's tensors streamed coordinator -> worker and back
// over gRPC on loopback, against raw TCP throughput measured in the same run
// (a plain socket pair moving the same bytes in the same direction). Two gRPC
// paths carry the same TensorChunk bytes on the wire:
//   raw:   the path the daemons use (common/rpc/tensor_streams.h): ByteBuffer methods
//          whose slices point into the tensors, decoded in place, one copy
//          into the target tensor;
//   typed: generated protobuf stubs (a copy into each message's `bytes`, a
//          serialization copy, a parse copy, then the assembly copy).
//
//   transport_bench [--max_mb=512] [--chunk_kb=1024]
#include <ATen/ATen.h>
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/rpc_service_method.h>
#include <grpcpp/support/method_handler.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "bench/bench_util.h"
#include "bench/transport_bench.grpc.pb.h"
#include "common/rpc/tensor_streams.h"
#include "common/rpc/rpc_util.h"
#include "common/transport/tensor_chunks.h"
#include "common/ist/tensor_pool.h"
#include "twist/v1/worker_service.pb.h"

namespace twist::bench {
namespace {

// Each figure is the median of this many transfers (loopback throughput on a
// small shared machine varies by a factor of 1.5 from one transfer to the
// next).
constexpr int kRepeats = 5;

common::NamedTensors Payload(int64_t bytes) {
  common::NamedTensors t;
  t.Set("x", at::rand({bytes / 4}));
  return t;
}

// The receiving side's tensor "x" of `n` floats, allocated once and reused,
// as the daemons assemble into tensors allocated before the transfer: the
// first touch of fresh memory (page faults, zeroing) is an allocation cost,
// not a transport one, and the raw TCP baseline reuses its buffer too.
common::NamedTensors& Target(common::NamedTensors* target, int64_t n) {
  if (target->empty() || target->Find("x")->numel() != n) {
    target->Set("x", at::empty({n}));
    target->Find("x")->fill_(0);
  }
  return *target;
}

class TransportService final : public TransportBench::Service {
 public:
  grpc::Status Download(
      grpc::ServerContext*, const DownloadRequest* request,
      grpc::ServerWriter<twist::v1::TensorChunk>* writer) override {
    if (payload_.empty() || payload_.NumBytes() != request->bytes()) {
      payload_ = Payload(request->bytes());
    }
    twist::v1::TensorChunk message;
    absl::Status s = common::ForEachChunk(
        payload_, request->chunk_bytes(), [&](const common::ChunkRef& chunk) {
          common::ToMessage(chunk, &message);
          return writer->Write(message) ? absl::OkStatus()
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
        int64_t n = 1;
        for (int64_t d : chunk.shape()) n *= d;
        assembler = std::make_unique<common::ChunkAssembler>(
            Target(&target_, n),
            common::ChunkAssembler::Options{size_t{4} << 20, false});
      }
      if (absl::Status s = assembler->Add(common::ViewOf(chunk)); !s.ok())
        return common::ToGrpcStatus(s);
    }
    response->set_bytes(assembler ? assembler->tensors().NumBytes() : 0);
    return grpc::Status::OK;
  }

 private:
  common::NamedTensors payload_;
  common::NamedTensors target_;
};

// The raw path: the same messages as TransportService, as ByteBuffers. A
// stream message is {field 1: header, field 2: TensorChunk}; only chunks are
// sent here.
constexpr int kChunkField = 2;
constexpr char kRawDownload[] = "/twist.bench.RawTransport/Download";
constexpr char kRawUpload[] = "/twist.bench.RawTransport/Upload";

class RawTransportService final : public grpc::Service {
 public:
  RawTransportService() {
    using Self = RawTransportService;
    AddMethod(new grpc::internal::RpcServiceMethod(
        kRawDownload, grpc::internal::RpcMethod::SERVER_STREAMING,
        new grpc::internal::ServerStreamingHandler<Self, grpc::ByteBuffer,
                                                   grpc::ByteBuffer>(
            [](Self* self, grpc::ServerContext*,
               const grpc::ByteBuffer* request,
               grpc::ServerWriter<grpc::ByteBuffer>* writer) {
              return self->Download(*request, writer);
            },
            this)));
    AddMethod(new grpc::internal::RpcServiceMethod(
        kRawUpload, grpc::internal::RpcMethod::CLIENT_STREAMING,
        new grpc::internal::ClientStreamingHandler<Self, grpc::ByteBuffer,
                                                   grpc::ByteBuffer>(
            [](Self* self, grpc::ServerContext*,
               grpc::ServerReader<grpc::ByteBuffer>* reader,
               grpc::ByteBuffer* response) {
              return self->Upload(reader, response);
            },
            this)));
  }

 private:
  grpc::Status Download(const grpc::ByteBuffer& request,
                        grpc::ServerWriter<grpc::ByteBuffer>* writer) {
    DownloadRequest parsed;
    if (absl::Status s = common::FromByteBuffer(request, &parsed); !s.ok())
      return common::ToGrpcStatus(s);
    common::NamedTensors payload;
    {
      std::lock_guard<std::mutex> lock(mu_);  // streams run concurrently
      common::NamedTensors& cached = payloads_[parsed.bytes()];
      if (cached.empty()) cached = Payload(parsed.bytes());
      payload = cached;
    }
    return common::ToGrpcStatus(common::ForEachChunkBuffer(
        payload, parsed.chunk_bytes(), kChunkField,
        [&](grpc::ByteBuffer& chunk) {
          return writer->Write(chunk) ? absl::OkStatus()
                                      : absl::UnavailableError("broken");
        }));
  }

  grpc::Status Upload(grpc::ServerReader<grpc::ByteBuffer>* reader,
                      grpc::ByteBuffer* response) {
    grpc::ByteBuffer buffer;
    std::unique_ptr<common::ChunkAssembler> assembler;
    int64_t bytes = 0;
    while (reader->Read(&buffer)) {
      if (!assembler) {
        // The bench knows its payload: one float32 tensor "x" whose size the
        // first chunk's shape gives; decode it once to learn the size.
        twist::v1::TensorChunk first;
        if (!ChunkOf(buffer, &first))
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no chunk");
        int64_t n = 1;
        for (int64_t d : first.shape()) n *= d;
        // One target per concurrent stream, reused across transfers.
        common::NamedTensors target;
        target.Set("x", targets_.Acquire({n}, at::kFloat));
        assembler =
            std::make_unique<common::ChunkAssembler>(
                target, common::ChunkAssembler::Options{size_t{4} << 20, false});
      }
      absl::StatusOr<bool> chunk =
          common::AddChunkBuffer(buffer, kChunkField, assembler.get(), &bytes);
      if (!chunk.ok()) return common::ToGrpcStatus(chunk.status());
    }
    UploadResponse typed;
    typed.set_bytes(bytes);
    *response = common::ToByteBuffer(typed);
    return grpc::Status::OK;
  }

  // Parses a chunk message's TensorChunk (only for the first message).
  static bool ChunkOf(const grpc::ByteBuffer& buffer,
                      twist::v1::TensorChunk* chunk) {
    twist::v1::AssignmentMessage message;  // field 2 is a TensorChunk too
    if (!common::FromByteBuffer(buffer, &message).ok() || !message.has_chunk())
      return false;
    *chunk = message.chunk();
    return true;
  }

  std::mutex mu_;
  std::map<int64_t, common::NamedTensors> payloads_;
  common::TensorPool targets_;
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
  bench::RawTransportService raw_service;
  builder.RegisterService(&raw_service);
  auto server = builder.BuildAndStart();
  const std::string address = "127.0.0.1:" + std::to_string(port);
  auto channel = common::MakeChannel(address);
  auto stub = bench::TransportBench::NewStub(channel);
  // Channels with their own TCP connections, for transfers split over
  // several streams (gRPC shares a connection between channels whose
  // arguments are equal: the extra argument keeps them apart).
  constexpr int kMaxStreams = 4;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int k = 0; k < kMaxStreams; ++k) {
    grpc::ChannelArguments args = common::DefaultChannelArguments();
    args.SetInt("twist.bench.connection", k);
    channels.push_back(grpc::CreateCustomChannel(
        address, grpc::InsecureChannelCredentials(), args));
  }

  // Returns the median seconds down and up on the raw (zero-copy) path, the
  // bytes split evenly over `streams` concurrent streams on their own
  // connections.
  auto raw_round_trip = [&](int64_t bytes, int64_t chunk, int streams = 1) {
    const int64_t part = bytes / streams / 4 * 4;
    bench::DownloadRequest request;
    request.set_bytes(part);
    request.set_chunk_bytes(chunk);
    const grpc::ByteBuffer request_buffer = common::ToByteBuffer(request);
    std::vector<common::NamedTensors> targets(streams);
    auto concurrently = [&](const std::function<void(int)>& transfer) {
      std::vector<std::thread> threads;
      for (int k = 1; k < streams; ++k) threads.emplace_back(transfer, k);
      transfer(0);
      for (auto& t : threads) t.join();
    };
    const double down = bench::MedianSeconds(bench::kRepeats, [&] {
      concurrently([&](int k) {
        grpc::ClientContext context;
        auto reader = common::OpenServerStream(
            channels[k].get(), bench::kRawDownload, &context, request_buffer);
        common::ChunkAssembler assembler(
            bench::Target(&targets[k], part / 4),
            common::ChunkAssembler::Options{size_t{4} << 20, false});
        grpc::ByteBuffer buffer;
        int64_t got = 0;
        while (reader->Read(&buffer)) {
          absl::StatusOr<bool> c = common::AddChunkBuffer(
              buffer, bench::kChunkField, &assembler, &got);
          if (!c.ok() || !*c) std::abort();
        }
        if (!reader->Finish().ok() || !assembler.Finish().ok()) std::abort();
      });
    });
    const common::NamedTensors payload = bench::Payload(part);
    const double up = bench::MedianSeconds(bench::kRepeats, [&] {
      concurrently([&](int k) {
        grpc::ClientContext context;
        grpc::ByteBuffer response;
        auto writer = common::OpenClientStream(
            channels[k].get(), bench::kRawUpload, &context, &response);
        common::ForEachChunkBuffer(
            payload, chunk, bench::kChunkField,
            [&](grpc::ByteBuffer& c) {
              return writer->Write(c) ? absl::OkStatus()
                                      : absl::UnavailableError("broken");
            })
            .IgnoreError();
        writer->WritesDone();
        if (!writer->Finish().ok()) std::abort();
      });
    });
    return std::make_pair(down, up);
  };

  // The same on the typed (generated stub) path.
  auto typed_round_trip = [&](int64_t bytes, int64_t chunk) {
    // Down: the worker assembles what the coordinator streams.
    common::NamedTensors target;
    const double down = bench::MedianSeconds(bench::kRepeats, [&] {
      grpc::ClientContext context;
      bench::DownloadRequest request;
      request.set_bytes(bytes);
      request.set_chunk_bytes(chunk);
      auto reader = stub->Download(&context, request);
      common::ChunkAssembler assembler(
          bench::Target(&target, bytes / 4),
          common::ChunkAssembler::Options{size_t{4} << 20, false});
      twist::v1::TensorChunk c;
      while (reader->Read(&c)) {
        if (!assembler.Add(common::ViewOf(c)).ok()) std::abort();
      }
      if (!reader->Finish().ok() || !assembler.Finish().ok()) std::abort();
    });
    // Up: the worker streams its trained slices back.
    const common::NamedTensors payload = bench::Payload(bytes);
    const double up = bench::MedianSeconds(bench::kRepeats, [&] {
      grpc::ClientContext context;
      bench::UploadResponse response;
      auto writer = stub->Upload(&context, &response);
      twist::v1::TensorChunk message;
      common::ForEachChunk(payload, chunk,
                           [&](const common::ChunkRef& c) {
                             common::ToMessage(c, &message);
                             return writer->Write(message)
                                        ? absl::OkStatus()
                                        : absl::UnavailableError("broken");
                           })
          .IgnoreError();
      writer->WritesDone();
      if (!writer->Finish().ok()) std::abort();
    });
    return std::make_pair(down, up);
  };

  std::printf("%8s %7s %9s %9s %9s %9s %10s %7s %7s\n", "MB", "chunk",
              "tcp GB/s", "down", "up", "raw GB/s", "typed GB/s", "raw/tcp",
              "typed/tcp");
  for (double mb : {1.0, 4.0, 16.0, 64.0, 256.0, 512.0}) {
    if (mb > max_mb) continue;
    const int64_t bytes = static_cast<int64_t>(mb * 1e6) / 4 * 4;
    const double tcp = bench::MedianSeconds(
        bench::kRepeats, [&] { bench::RawTcpSeconds(bytes, chunk_kb << 10); });
    const auto [down, up] = raw_round_trip(bytes, chunk_kb << 10);
    const auto [typed_down, typed_up] = typed_round_trip(bytes, chunk_kb << 10);
    const double tcp_gbs = bytes / tcp / 1e9;
    const double raw_gbs = 2.0 * bytes / (down + up) / 1e9;
    const double typed_gbs = 2.0 * bytes / (typed_down + typed_up) / 1e9;
    std::printf("%8.0f %6lldK %9.2f %9.2f %9.2f %9.2f %10.2f %6.2fx %8.2fx\n",
                mb, static_cast<long long>(chunk_kb), tcp_gbs,
                bytes / down / 1e9, bytes / up / 1e9, raw_gbs, typed_gbs,
                raw_gbs / tcp_gbs, typed_gbs / tcp_gbs);
    std::printf(
        "JSON {\"bench\": \"transport\", \"bytes\": %lld, \"chunk_bytes\": "
        "%lld, \"tcp_gbps\": %.4f, \"down_gbps\": %.4f, \"up_gbps\": %.4f, "
        "\"grpc_gbps\": %.4f, \"ratio\": %.4f, \"typed_gbps\": %.4f, "
        "\"typed_ratio\": %.4f}\n",
        static_cast<long long>(bytes), static_cast<long long>(chunk_kb << 10),
        tcp_gbs, bytes / down / 1e9, bytes / up / 1e9, raw_gbs,
        raw_gbs / tcp_gbs, typed_gbs, typed_gbs / tcp_gbs);
    std::fflush(stdout);
  }
  // The same bytes split over concurrent streams on separate connections
  // (the daemons use one stream per transfer).
  for (double mb : {256.0, 512.0}) {
    if (mb > max_mb) continue;
    const int64_t bytes = static_cast<int64_t>(mb * 1e6) / 4 * 4;
    const double tcp = bench::MedianSeconds(
        bench::kRepeats, [&] { bench::RawTcpSeconds(bytes, chunk_kb << 10); });
    const double tcp_gbs = bytes / tcp / 1e9;
    for (int streams : {1, 2, 4}) {
      const auto [down, up] = raw_round_trip(bytes, chunk_kb << 10, streams);
      const double raw_gbs = 2.0 * bytes / (down + up) / 1e9;
      std::printf(
          "streams %6.0f MB x %d: raw %.2f GB/s (down %.2f, up %.2f), "
          "%.2fx raw TCP (%.2f GB/s)\n",
          mb, streams, raw_gbs, bytes / down / 1e9, bytes / up / 1e9,
          raw_gbs / tcp_gbs, tcp_gbs);
      std::printf(
          "JSON {\"bench\": \"transport_streams\", \"bytes\": %lld, "
          "\"streams\": %d, \"grpc_gbps\": %.4f, \"tcp_gbps\": %.4f, "
          "\"ratio\": %.4f}\n",
          static_cast<long long>(bytes), streams, raw_gbs, tcp_gbs,
          raw_gbs / tcp_gbs);
      std::fflush(stdout);
    }
  }
  if (sweep) {
    const int64_t bytes =
        static_cast<int64_t>(std::min(max_mb, 256.0) * 1e6) / 4 * 4;
    const double tcp = bench::MedianSeconds(
        bench::kRepeats, [&] { bench::RawTcpSeconds(bytes, 1 << 20); });
    for (int64_t kb : {64, 256, 512, 1024, 2048, 3072}) {
      const auto [down, up] = raw_round_trip(bytes, kb << 10);
      const double raw_gbs = 2.0 * bytes / (down + up) / 1e9;
      std::printf(
          "sweep %6.0f MB chunk %5lldK: raw %.2f GB/s (%.2fx raw TCP)\n",
          bytes / 1e6, static_cast<long long>(kb), raw_gbs,
          raw_gbs / (bytes / tcp / 1e9));
      std::printf(
          "JSON {\"bench\": \"transport_chunk_sweep\", \"bytes\": %lld, "
          "\"chunk_bytes\": %lld, \"grpc_gbps\": %.4f, \"tcp_gbps\": %.4f}\n",
          static_cast<long long>(bytes), static_cast<long long>(kb << 10),
          raw_gbs, bytes / tcp / 1e9);
      std::fflush(stdout);
    }
  }
  server->Shutdown();
  return 0;
}
