// Tensor chunks as whole TensorChunk messages, for tests that build, mutate
// and replay chunk streams by hand (common::ViewOf feeds them back to an
// assembler).
#ifndef TWIST_TESTS_CHUNK_MESSAGES_H_
#define TWIST_TESTS_CHUNK_MESSAGES_H_

#include <vector>

#include "absl/status/statusor.h"
#include "common/base/status_macros.h"
#include "common/transport/tensor_chunks.h"
#include "common/transport/wire_chunks.h"
#include "twist/v1/tensor.pb.h"

namespace twist::testing {

// Every chunk of `tensors` as a message (data copied).
inline absl::StatusOr<std::vector<twist::v1::TensorChunk>> SplitIntoChunks(
    const common::NamedTensors& tensors,
    size_t max_chunk_bytes = common::kChunkBytes) {
  std::vector<twist::v1::TensorChunk> chunks;
  TWIST_RETURN_IF_ERROR(common::ForEachChunk(
      tensors, max_chunk_bytes, [&](const common::ChunkRef& chunk) {
        common::ToMessage(chunk, &chunks.emplace_back());
        return absl::OkStatus();
      }));
  return chunks;
}

}  // namespace twist::testing

#endif  // TWIST_TESTS_CHUNK_MESSAGES_H_
