// Splitting named tensors into TensorChunk messages of bounded size and
// reassembling them into preallocated tensors on the other side.
//
// A tensor of N bytes travels as chunks covering [0, N) in order, each at most
// `max_chunk_bytes` of data; an empty tensor travels as one empty chunk so the
// receiver sees it. The receiver checks every chunk against the tensor it
// expects (name, shape, dtype, offset, length) and writes its bytes straight
// into that tensor's memory.
#ifndef TWIST_COMMON_TENSOR_CHUNKS_H_
#define TWIST_COMMON_TENSOR_CHUNKS_H_

#include <cstddef>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/named_tensors.h"
#include "common/wire_chunks.h"
#include "twist/v1/tensor.pb.h"

namespace twist::common {

inline constexpr size_t kDefaultChunkBytes = size_t{1} << 20;  // 1 MiB

// Wire dtype of a tensor element type; InvalidArgument for unsupported ones.
absl::StatusOr<twist::v1::DType> ToWireDType(at::ScalarType type);
absl::StatusOr<at::ScalarType> FromWireDType(twist::v1::DType dtype);

// `tensor` itself when it is a contiguous CPU tensor (no copy), else a
// contiguous CPU copy: the memory chunks are cut from.
at::Tensor ContiguousCpu(const at::Tensor& tensor);

// Calls `sink` with each chunk of `tensors`, in order; stops at the first
// error from `sink` and returns it. Tensors on another device are copied to
// the CPU first. The chunk passed to `sink` is reused between calls.
absl::Status ForEachChunk(
    const NamedTensors& tensors, size_t max_chunk_bytes,
    const std::function<absl::Status(const twist::v1::TensorChunk&)>& sink);

// Convenience for tests and small transfers: all chunks in a vector.
absl::StatusOr<std::vector<twist::v1::TensorChunk>> SplitIntoChunks(
    const NamedTensors& tensors, size_t max_chunk_bytes = kDefaultChunkBytes);

// Receives chunks into preallocated CPU tensors. Not thread-safe.
class ChunkAssembler {
 public:
  // `targets` are the tensors to fill, contiguous and on the CPU; the
  // assembler writes into their memory (they may be a model's parameters).
  // `max_chunk_bytes` bounds each chunk's data.
  explicit ChunkAssembler(NamedTensors targets,
                          size_t max_chunk_bytes = kDefaultChunkBytes);

  // Writes one chunk. InvalidArgument, naming the tensor, for an unknown
  // name, a shape or dtype other than the target's, an offset other than the
  // next expected byte (out of order, repeated or overlapping), data running
  // past the tensor's end, an oversize chunk, or a chunk for a tensor that is
  // already complete. After an error the assembler accepts nothing more.
  absl::Status Add(const twist::v1::TensorChunk& chunk);
  // The same for a chunk decoded in place (common/wire_chunks.h): its data
  // is copied once, from wherever it was received into the tensor.
  absl::Status Add(const ChunkView& chunk);

  // OK when every target has received all its bytes; otherwise
  // InvalidArgument naming the first incomplete tensor (a truncated stream).
  absl::Status Finish() const;

  const NamedTensors& tensors() const { return targets_; }

 private:
  struct Progress {
    int64_t received_bytes = 0;
    bool seen = false;
  };

  NamedTensors targets_;
  std::vector<Progress> progress_;
  std::unordered_map<std::string, size_t> position_;
  size_t max_chunk_bytes_;
  absl::Status failed_;
};

}  // namespace twist::common

#endif  // TWIST_COMMON_TENSOR_CHUNKS_H_
