// Compressed forms of a worker's update (trained-minus-received deltas), as
// the bytes that travel: one uint8 tensor per parameter, whose length follows
// from the parameter's element count and the encoding alone, so a receiver
// allocates it before the first chunk arrives.
//
//   int8   blocks of 256 elements: per block a float32 step (absmax / 127),
//          then one signed byte per element; value = code * step. 8.125 bits
//          per element.
//   int4   blocks of 64 elements: per block a float32 step (absmax / 7), then
//          two 4-bit codes per byte (low nibble first), stored as q + 8 with
//          q in [-7, 7]; value = q * step. 4.5 bits per element.
//   top-k  chunks of 4096 elements: per chunk the k = ceil(fraction * length)
//          entries of largest magnitude, as a float32 step per chunk, then
//          every chunk's k uint16 offsets (ascending within the chunk), then
//          their 4-bit codes as int4's; every other entry is zero. At a
//          fraction of 0.02, 0.41 bits per element.
//
//   bytes: [steps: float32 x blocks][offsets: uint16 x sum k, top-k only]
//          [codes], little-endian.
//
// What a code does not carry is the sender's to keep (error feedback: the
// worker adds it to its next update of the same unit). Decoding checks
// everything it reads, so corrupt or truncated bytes are refused, never
// merged. Encode and decode are the same arithmetic on every device, so a
// worker's own decode of what it sent equals the coordinator's bit for bit.
#ifndef TWIST_COMMON_IST_UPDATE_CODEC_H_
#define TWIST_COMMON_IST_UPDATE_CODEC_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace twist::common {

enum class UpdateCodec { kNone, kInt8, kInt4, kTopK };

struct UpdateEncoding {
  UpdateCodec codec = UpdateCodec::kNone;
  double topk_fraction = 0.02;  // top-k only, in (0, 1]
};

// "none", "int8", "int4", "topk".
const char* UpdateCodecName(UpdateCodec codec);

// Bytes of a tensor of `numel` elements in `encoding` (not kNone).
int64_t EncodedBytes(const UpdateEncoding& encoding, int64_t numel);

// `values` (float32, any shape and device) in `encoding` (not kNone): a
// uint8 tensor of EncodedBytes(encoding, values.numel()) on values' device.
at::Tensor EncodeUpdate(const at::Tensor& values,
                        const UpdateEncoding& encoding);

// The float32 values `bytes` (uint8, one dimension) encode, shaped `shape`,
// on bytes' device. InvalidArgument saying what is wrong (a length that does
// not fit, a step that is negative or not finite, a code or offset no
// encoder writes).
absl::StatusOr<at::Tensor> DecodeUpdate(const at::Tensor& bytes,
                                        at::IntArrayRef shape,
                                        const UpdateEncoding& encoding);

// The same with a choice of implementation: `tensor_ops` uses ATen
// operations on the tensor's device (the GPU's way, taken whenever the tensor
// is not on the CPU); otherwise one pass over memory on the CPU. Both give the
// same bytes and values. For tests and benchmarks.
at::Tensor EncodeUpdate(const at::Tensor& values,
                        const UpdateEncoding& encoding, bool tensor_ops);
absl::StatusOr<at::Tensor> DecodeUpdate(const at::Tensor& bytes,
                                        at::IntArrayRef shape,
                                        const UpdateEncoding& encoding,
                                        bool tensor_ops);

}  // namespace twist::common

#endif  // TWIST_COMMON_IST_UPDATE_CODEC_H_
