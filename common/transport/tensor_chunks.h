// Splitting named tensors into chunks of bounded size and reassembling them
// into preallocated tensors on the other side: the one chunker and the one
// assembler of every tensor stream (assignments, updates, exports).
//
// A tensor of N bytes travels as chunks covering [0, N) in order, each at most
// `max_chunk_bytes` of data; an empty tensor travels as one empty chunk so the
// receiver sees it. Every chunk repeats the tensor's name, shape and dtype, and
// the receiver checks each against the tensor it expects before writing the
// chunk's bytes straight into that tensor's memory.
#ifndef TWIST_COMMON_TRANSPORT_TENSOR_CHUNKS_H_
#define TWIST_COMMON_TRANSPORT_TENSOR_CHUNKS_H_

#include <cstddef>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/named_tensors.h"
#include "common/transport/wire_chunks.h"
#include "twist/v1/tensor.pb.h"

namespace twist::common {

// Tensor bytes per chunk message, on every stream. 1 MiB measured best on
// loopback between 64 KiB and 3 MiB (docs/benchmarks.md, transport).
inline constexpr size_t kChunkBytes = size_t{1} << 20;

// With check_finite, a received chunk is copied and checked this many bytes
// at a time, so that each piece is checked while in the first-level cache.
inline constexpr size_t kCheckPieceBytes = size_t{32} << 10;

// `tensor` itself when it is a contiguous CPU tensor (no copy), else a
// contiguous CPU copy: the memory chunks are cut from.
at::Tensor ContiguousCpu(const at::Tensor& tensor);

// One chunk of one tensor, pointing into the tensor's memory. Valid only
// during the sink call it is passed to; `tensor` owns `data` (hold a
// reference to it to keep the bytes alive beyond the call).
struct ChunkRef {
  const std::string& name;
  const std::vector<int64_t>& shape;
  twist::v1::DType dtype;
  uint64_t offset;    // of `data` within the tensor's row-major bytes
  const char* data;   // `size` bytes
  size_t size;
  const at::Tensor& tensor;  // CPU, contiguous
};

// Calls `sink` with each chunk of `tensors`, in order; stops at the first
// error from `sink` and returns it. Tensors on another device are copied to
// the CPU first. InvalidArgument for a zero chunk size or an element type the
// wire does not carry.
absl::Status ForEachChunk(const NamedTensors& tensors, size_t max_chunk_bytes,
                          const std::function<absl::Status(const ChunkRef&)>& sink);

// The chunk as a TensorChunk message (its bytes copied in), for typed
// protobuf streams.
void ToMessage(const ChunkRef& chunk, twist::v1::TensorChunk* message);

// Receives chunks into preallocated CPU tensors. Not thread-safe.
class ChunkAssembler {
 public:
  struct Options {
    size_t max_chunk_bytes = kChunkBytes;  // bounds each chunk's data
    // Check every received value for NaN and infinity while it is still in
    // cache from the copy, instead of in a pass of its own later.
    bool check_finite = false;
  };

  // `targets` are the tensors to fill, contiguous and on the CPU; the
  // assembler writes into their memory (they may be a model's parameters).
  explicit ChunkAssembler(NamedTensors targets);
  ChunkAssembler(NamedTensors targets, Options options);

  // Writes one chunk (decoded in place: common/transport/wire_chunks.h); its
  // data is copied once, from wherever it was received into the tensor.
  // InvalidArgument, naming the tensor, for an unknown name, a shape or dtype
  // other than the target's, an offset other than the next expected byte (out
  // of order, repeated or overlapping), data running past the tensor's end,
  // an oversize chunk, or a chunk for a tensor that is already complete; with
  // check_finite, InvalidArgument naming the tensor that received a NaN or
  // infinite value (non_finite() then says so). After an error the assembler
  // accepts nothing more.
  absl::Status Add(const ChunkView& chunk);

  // True when the failure was a NaN or infinite value, not a malformed stream.
  bool non_finite() const { return non_finite_; }

  // OK when every target has received all its bytes; otherwise
  // InvalidArgument naming the first incomplete tensor (a truncated stream).
  absl::Status Finish() const;

  const NamedTensors& tensors() const { return targets_; }

 private:
  struct Progress {
    int64_t received_bytes = 0;
    int64_t checked_bytes = 0;  // a prefix of whole elements, check_finite
    bool seen = false;
  };

  NamedTensors targets_;
  std::vector<Progress> progress_;
  std::unordered_map<std::string, size_t> position_;
  const Options options_;
  absl::Status failed_;
  bool non_finite_ = false;
};

}  // namespace twist::common

#endif  // TWIST_COMMON_TRANSPORT_TENSOR_CHUNKS_H_
