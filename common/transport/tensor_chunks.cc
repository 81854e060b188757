#include "common/transport/tensor_chunks.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/model/finite.h"
#include "common/transport/wire_dtype.h"

namespace twist::common {

at::Tensor ContiguousCpu(const at::Tensor& tensor) {
  return tensor.device().is_cpu() && tensor.is_contiguous()
             ? tensor
             : tensor.detach().to(at::kCPU).contiguous();
}

absl::Status ForEachChunk(
    const NamedTensors& tensors, size_t max_chunk_bytes,
    const std::function<absl::Status(const ChunkRef&)>& sink) {
  if (max_chunk_bytes == 0) {
    return absl::InvalidArgumentError("chunk size must be positive");
  }
  for (const auto& [name, tensor] : tensors) {
    TWIST_ASSIGN_OR_RETURN(twist::v1::DType dtype,
                           ToWireDType(tensor.scalar_type()));
    const at::Tensor cpu = ContiguousCpu(tensor);
    const std::vector<int64_t> shape = cpu.sizes().vec();
    const char* bytes = static_cast<const char*>(cpu.data_ptr());
    const size_t total = cpu.numel() * cpu.element_size();
    size_t offset = 0;
    do {
      const size_t n = std::min(max_chunk_bytes, total - offset);
      TWIST_RETURN_IF_ERROR(
          sink(ChunkRef{name, shape, dtype, offset, bytes + offset, n, cpu}));
      offset += n;
    } while (offset < total);
  }
  return absl::OkStatus();
}

void ToMessage(const ChunkRef& chunk, twist::v1::TensorChunk* message) {
  message->set_name(chunk.name);
  message->clear_shape();
  for (int64_t d : chunk.shape) message->add_shape(d);
  message->set_dtype(chunk.dtype);
  message->set_offset(chunk.offset);
  message->set_data(chunk.data, chunk.size);
}

ChunkAssembler::ChunkAssembler(NamedTensors targets)
    : ChunkAssembler(std::move(targets), Options()) {}

ChunkAssembler::ChunkAssembler(NamedTensors targets, Options options)
    : targets_(std::move(targets)),
      progress_(targets_.size()),
      options_(options) {
  for (size_t i = 0; i < targets_.size(); ++i) {
    const at::Tensor& t = targets_[i].tensor;
    TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(),
                "ChunkAssembler target '", targets_[i].name,
                "' must be a contiguous CPU tensor");
    position_.emplace(targets_[i].name, i);
  }
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
  if (chunk.data_size > options_.max_chunk_bytes) {
    return fail(absl::StrCat("chunk carries ", chunk.data_size,
                             " bytes, more than the limit of ",
                             options_.max_chunk_bytes));
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
  // the tensor. With check_finite, the copy goes a piece at a time and each
  // piece is checked while it is still in the first-level cache (checked
  // after the whole chunk, most of it would be read back from memory).
  const int64_t element = static_cast<int64_t>(target.element_size());
  char* const base = static_cast<char*>(target.data_ptr());
  char* dst = base + chunk.offset;
  const size_t piece =
      options_.check_finite ? kCheckPieceBytes : chunk.data_size;
  for (const Span& span : chunk.data) {
    for (size_t done = 0; done < span.size;) {
      const size_t n = std::min(piece, span.size - done);
      std::memcpy(dst, span.data + done, n);
      dst += n;
      done += n;
      if (!options_.check_finite) continue;
      // The whole elements received since the last check.
      const int64_t upto = (dst - base) / element * element;
      if (!AllFinite(base + progress.checked_bytes,
                     (upto - progress.checked_bytes) / element,
                     target.scalar_type())) {
        non_finite_ = true;
        failed_ = absl::InvalidArgumentError(absl::StrCat(
            "tensor '", chunk.name, "' holds NaN or infinite values"));
        return failed_;
      }
      progress.checked_bytes = upto;
    }
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
