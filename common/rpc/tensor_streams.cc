#include "common/rpc/tensor_streams.h"

#include <ATen/ATen.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/transport/wire_chunks.h"
#include "twist/v1/job_service.grpc.pb.h"
#include "twist/v1/worker_service.grpc.pb.h"

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

grpc::ByteBuffer ChunkBuffer(const ChunkRef& chunk, int chunk_field) {
  grpc::Slice pieces[2] = {
      grpc::Slice(EncodeChunkPrefix(chunk_field, chunk.name, chunk.shape,
                                    chunk.dtype, chunk.offset, chunk.size)),
      grpc::Slice(const_cast<char*>(chunk.data), chunk.size, &ReleaseTensor,
                  new at::Tensor(chunk.tensor))};
  return grpc::ByteBuffer(pieces, chunk.size > 0 ? 2 : 1);
}

absl::Status ForEachChunkBuffer(
    const NamedTensors& tensors, size_t max_chunk_bytes, int chunk_field,
    const std::function<absl::Status(grpc::ByteBuffer&)>& sink) {
  return ForEachChunk(tensors, max_chunk_bytes, [&](const ChunkRef& chunk) {
    grpc::ByteBuffer message = ChunkBuffer(chunk, chunk_field);
    return sink(message);
  });
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

namespace twist::common {

std::string MethodPath(const char* service_full_name, const char* method) {
  return absl::StrCat("/", service_full_name, "/", method);
}

const char* ReceiveAssignmentPath() {
  static const std::string path = MethodPath(
      twist::v1::WorkerTransfer::service_full_name(), "ReceiveAssignment");
  return path.c_str();
}

const char* SendUpdatePath() {
  static const std::string path =
      MethodPath(twist::v1::WorkerTransfer::service_full_name(), "SendUpdate");
  return path.c_str();
}

const char* ExportModelPath() {
  static const std::string path =
      MethodPath(twist::v1::JobService::service_full_name(), "ExportModel");
  return path.c_str();
}

TensorStreamReader::TensorStreamReader(ReadFn read, int chunk_field,
                                       std::string stream_name)
    : read_(std::move(read)),
      chunk_field_(chunk_field),
      stream_name_(std::move(stream_name)) {}

absl::StatusOr<bool> TensorStreamReader::ReadFirst(grpc::ByteBuffer* buffer) {
  if (state_ != State::kStart) {
    return absl::FailedPreconditionError(
        absl::StrCat("the header of the ", stream_name_, " was already read"));
  }
  state_ = State::kDone;  // unless a header follows
  return read_(buffer);
}

absl::Status TensorStreamReader::NoHeaderError() const {
  return absl::InvalidArgumentError(
      absl::StrCat(stream_name_, " must start with its header"));
}

absl::Status TensorStreamReader::ReadChunks(ChunkAssembler* assembler) {
  if (state_ != State::kChunks) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the chunks of the ", stream_name_, " follow its header only"));
  }
  state_ = State::kDone;
  grpc::ByteBuffer buffer;
  while (read_(&buffer)) {
    TWIST_ASSIGN_OR_RETURN(bool chunk, AddChunkBuffer(buffer, chunk_field_,
                                                      assembler, &data_bytes_));
    if (!chunk) {
      return absl::InvalidArgumentError(
          absl::StrCat("a second header in one ", stream_name_));
    }
  }
  return absl::OkStatus();
}

absl::Status WriteTensorStream(const WriteFn& write,
                               const google::protobuf::MessageLite& header,
                               const NamedTensors& tensors, int chunk_field,
                               const std::function<absl::Status()>& check,
                               size_t max_chunk_bytes) {
  if (!write(ToByteBuffer(header))) {
    return absl::UnavailableError("stream broke before the header");
  }
  return ForEachChunkBuffer(
      tensors, max_chunk_bytes, chunk_field, [&](grpc::ByteBuffer& chunk) {
        if (check) {
          TWIST_RETURN_IF_ERROR(check());
        }
        if (!write(chunk)) {
          return absl::UnavailableError("stream broke mid-transfer");
        }
        return absl::OkStatus();
      });
}

}  // namespace twist::common
