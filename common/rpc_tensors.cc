#include "common/rpc_tensors.h"

#include <ATen/ATen.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/wire_chunks.h"

namespace twist::common {
namespace {

// Keeps a tensor's storage alive while gRPC holds a slice of it.
void ReleaseTensor(void* tensor) { delete static_cast<at::Tensor*>(tensor); }

std::vector<Span> SpansOf(const std::vector<grpc::Slice>& slices) {
  std::vector<Span> spans;
  spans.reserve(slices.size());
  for (const grpc::Slice& s : slices) {
    spans.push_back({reinterpret_cast<const char*>(s.begin()), s.size()});
  }
  return spans;
}

}  // namespace

grpc::ByteBuffer ToByteBuffer(const google::protobuf::MessageLite& message) {
  std::string bytes = message.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

absl::Status FromByteBuffer(const grpc::ByteBuffer& buffer,
                            google::protobuf::MessageLite* message) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok())
    return absl::InvalidArgumentError("unreadable message");
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  if (!message->ParseFromString(bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("message is not a valid ", message->GetTypeName()));
  }
  return absl::OkStatus();
}

absl::Status ForEachChunkBuffer(
    const NamedTensors& tensors, size_t max_chunk_bytes, int chunk_field,
    const std::function<absl::Status(grpc::ByteBuffer&)>& sink) {
  if (max_chunk_bytes == 0)
    return absl::InvalidArgumentError("chunk size must be positive");
  for (const auto& [name, tensor] : tensors) {
    TWIST_ASSIGN_OR_RETURN(twist::v1::DType dtype,
                           ToWireDType(tensor.scalar_type()));
    const at::Tensor cpu = ContiguousCpu(tensor);
    const std::vector<int64_t> shape = cpu.sizes().vec();
    char* bytes = static_cast<char*>(cpu.data_ptr());
    const size_t total = cpu.numel() * cpu.element_size();
    size_t offset = 0;
    do {
      const size_t n = std::min(max_chunk_bytes, total - offset);
      grpc::Slice pieces[2] = {
          grpc::Slice(
              EncodeChunkPrefix(chunk_field, name, shape, dtype, offset, n)),
          grpc::Slice(bytes + offset, n, &ReleaseTensor, new at::Tensor(cpu))};
      grpc::ByteBuffer message(pieces, n > 0 ? 2 : 1);
      TWIST_RETURN_IF_ERROR(sink(message));
      offset += n;
    } while (offset < total);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> AddChunkBuffer(const grpc::ByteBuffer& buffer,
                                    int chunk_field, ChunkAssembler* assembler,
                                    int64_t* data_bytes) {
  std::vector<grpc::Slice> slices;  // references, not copies
  if (!buffer.Dump(&slices).ok())
    return absl::InvalidArgumentError("unreadable message");
  ChunkView view;
  TWIST_ASSIGN_OR_RETURN(
      bool is_chunk, DecodeChunkMessage(SpansOf(slices), chunk_field, &view));
  if (!is_chunk) return false;
  *data_bytes += static_cast<int64_t>(view.data_size);
  TWIST_RETURN_IF_ERROR(assembler->Add(view));
  return true;
}

std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> OpenServerStream(
    grpc::ChannelInterface* channel, const char* name,
    grpc::ClientContext* context, const grpc::ByteBuffer& request) {
  const grpc::internal::RpcMethod method(
      name, grpc::internal::RpcMethod::SERVER_STREAMING);
  return std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>>(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(
          channel, method, context, request));
}

std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> OpenClientStream(
    grpc::ChannelInterface* channel, const char* name,
    grpc::ClientContext* context, grpc::ByteBuffer* response) {
  const grpc::internal::RpcMethod method(
      name, grpc::internal::RpcMethod::CLIENT_STREAMING);
  return std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>>(
      grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(
          channel, method, context, response));
}

}  // namespace twist::common
