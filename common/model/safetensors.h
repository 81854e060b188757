// Reading and writing the safetensors format (huggingface/safetensors):
//
//   [8 bytes: N, little-endian uint64][N bytes: JSON header][raw data]
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets":
// [begin, end]} (offsets relative to the start of the data) and may hold a
// "__metadata__" object of string to string. Data is row-major, little-endian.
// Files written here load with safetensors.torch.load_file in Python.
#ifndef TWIST_COMMON_MODEL_SAFETENSORS_H_
#define TWIST_COMMON_MODEL_SAFETENSORS_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/named_tensors.h"

namespace twist::common {

using Metadata = std::map<std::string, std::string>;

struct SafetensorsContents {
  NamedTensors tensors;  // CPU, contiguous, in file order
  Metadata metadata;
};

// Writes `tensors` (any device; copied to CPU as needed) to `path` through a
// temporary file in the same folder that is fsynced and then renamed over
// `path`, so a crash never leaves a half-written file under that name.
absl::Status WriteSafetensors(const std::string& path,
                              const NamedTensors& tensors,
                              const Metadata& metadata = {});

// Reads a whole file. Errors: NotFound for a missing file; DataLoss for a
// truncated file, a header that is not valid JSON or whose entries are
// inconsistent (unknown dtype, a size that does not match the shape,
// overlapping or out-of-range offsets, data that does not cover the file).
absl::StatusOr<SafetensorsContents> ReadSafetensors(const std::string& path);

// The same checks, on bytes already in memory.
absl::StatusOr<SafetensorsContents> DecodeSafetensors(const std::string& bytes);

// The safetensors dtype string ("F32", "BF16", ...) of a tensor's element
// type; InvalidArgument for types the format has no name for.
absl::StatusOr<std::string> SafetensorsDtypeName(at::ScalarType type);

}  // namespace twist::common

#endif  // TWIST_COMMON_MODEL_SAFETENSORS_H_
