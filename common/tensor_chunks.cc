#include "common/tensor_chunks.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace twist::common {
namespace {

struct WireType {
  at::ScalarType type;
  twist::v1::DType wire;
};
constexpr WireType kWireTypes[] = {
    {at::kFloat, twist::v1::DTYPE_FLOAT32},
    {at::kDouble, twist::v1::DTYPE_FLOAT64},
    {at::kBFloat16, twist::v1::DTYPE_BFLOAT16},
    {at::kHalf, twist::v1::DTYPE_FLOAT16},
    {at::kLong, twist::v1::DTYPE_INT64},
    {at::kInt, twist::v1::DTYPE_INT32},
    {at::kByte, twist::v1::DTYPE_UINT8},
};

}  // namespace

absl::StatusOr<twist::v1::DType> ToWireDType(at::ScalarType type) {
  for (const auto& w : kWireTypes) {
    if (w.type == type) return w.wire;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("dtype ", c10::toString(type), " cannot be sent"));
}

absl::StatusOr<at::ScalarType> FromWireDType(twist::v1::DType dtype) {
  for (const auto& w : kWireTypes) {
    if (w.wire == dtype) return w.type;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown wire dtype ", static_cast<int>(dtype)));
}

at::Tensor ContiguousCpu(const at::Tensor& tensor) {
  return tensor.device().is_cpu() && tensor.is_contiguous()
             ? tensor
             : tensor.detach().to(at::kCPU).contiguous();
}

absl::Status ForEachChunk(
    const NamedTensors& tensors, size_t max_chunk_bytes,
    const std::function<absl::Status(const twist::v1::TensorChunk&)>& sink) {
  if (max_chunk_bytes == 0) {
    return absl::InvalidArgumentError("chunk size must be positive");
  }
  twist::v1::TensorChunk chunk;
  for (const auto& [name, tensor] : tensors) {
    TWIST_ASSIGN_OR_RETURN(twist::v1::DType dtype,
                           ToWireDType(tensor.scalar_type()));
    const at::Tensor cpu = ContiguousCpu(tensor);
    const char* bytes = static_cast<const char*>(cpu.data_ptr());
    const size_t total = cpu.numel() * cpu.element_size();
    chunk.set_name(name);
    chunk.clear_shape();
    for (int64_t d : cpu.sizes()) chunk.add_shape(d);
    chunk.set_dtype(dtype);
    size_t offset = 0;
    do {
      const size_t n = std::min(max_chunk_bytes, total - offset);
      chunk.set_offset(offset);
      chunk.set_data(bytes + offset, n);
      TWIST_RETURN_IF_ERROR(sink(chunk));
      offset += n;
    } while (offset < total);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<twist::v1::TensorChunk>> SplitIntoChunks(
    const NamedTensors& tensors, size_t max_chunk_bytes) {
  std::vector<twist::v1::TensorChunk> chunks;
  TWIST_RETURN_IF_ERROR(ForEachChunk(tensors, max_chunk_bytes,
                                     [&](const twist::v1::TensorChunk& chunk) {
                                       chunks.push_back(chunk);
                                       return absl::OkStatus();
                                     }));
  return chunks;
}

ChunkAssembler::ChunkAssembler(NamedTensors targets, size_t max_chunk_bytes)
    : targets_(std::move(targets)),
      progress_(targets_.size()),
      max_chunk_bytes_(max_chunk_bytes) {
  for (size_t i = 0; i < targets_.size(); ++i) {
    const at::Tensor& t = targets_[i].tensor;
    TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(),
                "ChunkAssembler target '", targets_[i].name,
                "' must be a contiguous CPU tensor");
    position_.emplace(targets_[i].name, i);
  }
}

absl::Status ChunkAssembler::Add(const twist::v1::TensorChunk& chunk) {
  ChunkView view;
  view.name = chunk.name();
  view.shape.assign(chunk.shape().begin(), chunk.shape().end());
  view.dtype = chunk.dtype();
  view.offset = chunk.offset();
  view.data.push_back({chunk.data().data(), chunk.data().size()});
  view.data_size = chunk.data().size();
  return Add(view);
}

absl::Status ChunkAssembler::Add(const ChunkView& chunk) {
  if (!failed_.ok()) return failed_;
  auto fail = [&](const std::string& why) {
    failed_ = absl::InvalidArgumentError(
        absl::StrCat("bad chunk for tensor '", chunk.name, "': ", why));
    return failed_;
  };
  auto it = position_.find(chunk.name);
  if (it == position_.end()) return fail("no such tensor is expected");
  const at::Tensor& target = targets_[it->second].tensor;
  Progress& progress = progress_[it->second];

  const auto sizes = target.sizes();
  if (chunk.shape != sizes.vec()) {
    return fail(absl::StrCat("shape (", absl::StrJoin(chunk.shape, ", "),
                             ") differs from the expected (",
                             absl::StrJoin(sizes, ", "), ")"));
  }
  absl::StatusOr<at::ScalarType> dtype = FromWireDType(chunk.dtype);
  if (!dtype.ok() || *dtype != target.scalar_type()) {
    return fail(absl::StrCat("dtype ", twist::v1::DType_Name(chunk.dtype),
                             " differs from the expected ",
                             c10::toString(target.scalar_type())));
  }
  const uint64_t total = target.numel() * target.element_size();
  if (chunk.data_size > max_chunk_bytes_) {
    return fail(absl::StrCat("chunk carries ", chunk.data_size,
                             " bytes, more than the limit of ",
                             max_chunk_bytes_));
  }
  if (progress.seen &&
      static_cast<uint64_t>(progress.received_bytes) == total) {
    return fail("the tensor is already complete (repeated chunk)");
  }
  if (chunk.offset != static_cast<uint64_t>(progress.received_bytes)) {
    return fail(absl::StrCat("offset ", chunk.offset, " but the next byte is ",
                             progress.received_bytes,
                             " (chunks out of order, repeated or missing)"));
  }
  if (chunk.data_size > total - chunk.offset) {
    return fail(absl::StrCat("data runs to byte ",
                             chunk.offset + chunk.data_size,
                             " past the tensor's ", total, " bytes"));
  }
  if (chunk.data_size == 0 && total > 0) return fail("empty chunk");
  // The one copy on the receiving side: from the transport's buffers into
  // the tensor.
  char* dst = static_cast<char*>(target.data_ptr()) + chunk.offset;
  for (const Span& span : chunk.data) {
    std::memcpy(dst, span.data, span.size);
    dst += span.size;
  }
  progress.received_bytes += static_cast<int64_t>(chunk.data_size);
  progress.seen = true;
  return absl::OkStatus();
}

absl::Status ChunkAssembler::Finish() const {
  if (!failed_.ok()) return failed_;
  for (size_t i = 0; i < targets_.size(); ++i) {
    const at::Tensor& t = targets_[i].tensor;
    const int64_t total = t.numel() * t.element_size();
    if (!progress_[i].seen || progress_[i].received_bytes != total) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", targets_[i].name, "' is incomplete: received ",
          progress_[i].received_bytes, " of ", total,
          " bytes (truncated stream)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace twist::common
