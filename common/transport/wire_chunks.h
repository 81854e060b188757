// The protobuf wire encoding of tensor chunks, written and read without
// copying tensor bytes. An AssignmentMessage or UpdateMessage whose `chunk`
// field holds a TensorChunk is, on the wire,
//   [chunk tag][length][name][shape][dtype][offset][data tag][length] DATA
// so a sender can emit the few bytes before DATA and let DATA point into the
// tensor, and a receiver can find DATA inside the transport's buffers and copy
// it once, straight into the target tensor. The encoding is exactly what
// protobuf produces, so either side may be an ordinary protobuf peer.
#ifndef TWIST_COMMON_TRANSPORT_WIRE_CHUNKS_H_
#define TWIST_COMMON_TRANSPORT_WIRE_CHUNKS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "twist/v1/tensor.pb.h"

namespace twist::common {

// A byte range in memory owned by someone else.
struct Span {
  const char* data;
  size_t size;
};

// The bytes of an outer message that carries a TensorChunk in field
// `chunk_field`, up to (not including) the chunk's `data_size` data bytes.
std::string EncodeChunkPrefix(int chunk_field, const std::string& name,
                              const std::vector<int64_t>& shape,
                              twist::v1::DType dtype, uint64_t offset,
                              size_t data_size);

// A decoded chunk whose data stays where it was received.
struct ChunkView {
  std::string name;
  std::vector<int64_t> shape;
  twist::v1::DType dtype = twist::v1::DTYPE_UNSPECIFIED;
  uint64_t offset = 0;
  std::vector<Span>
      data;  // the data bytes, in order, pointing into the message
  size_t data_size = 0;
};

// A chunk already parsed by protobuf (a typed stream's message), as the
// decoded view the assembler takes; the view points into `chunk`'s data.
ChunkView ViewOf(const twist::v1::TensorChunk& chunk);

// Decodes a message (given as spans, in order) of the outer type whose field
// `chunk_field` is a TensorChunk. Returns true and fills `view` when the
// message is a chunk; false when it holds something else (a header: parse it
// with protobuf instead). InvalidArgument for bytes that are not a valid
// encoding.
absl::StatusOr<bool> DecodeChunkMessage(const std::vector<Span>& message,
                                        int chunk_field, ChunkView* view);

// Field numbers of the `chunk` member of the messages that carry chunks.
inline constexpr int kAssignmentChunkField = 2;  // AssignmentMessage.chunk
inline constexpr int kUpdateChunkField = 2;      // UpdateMessage.chunk
inline constexpr int kExportChunkField = 2;      // ExportMessage.chunk

}  // namespace twist::common

#endif  // TWIST_COMMON_TRANSPORT_WIRE_CHUNKS_H_
