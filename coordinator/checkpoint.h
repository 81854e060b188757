// Checkpoints of a running job: the full model (and any coordinator-side
// optimizer state) after a round, so a coordinator that crashed or was
// stopped resumes the job where it left off.
//
// A checkpoint is a safetensors file jobs/<id>/checkpoint-<round>.safetensors
// holding "model.<name>" and "state.<name>" tensors; its metadata carries the
// round and a SHA-256 over every tensor's name and bytes. It is written to a
// temporary file, fsynced and renamed, and the newest `keep` are kept. A
// checkpoint whose checksum does not match (bit rot, a truncated copy) is
// skipped in favour of the one before it.
#ifndef TWIST_COORDINATOR_CHECKPOINT_H_
#define TWIST_COORDINATOR_CHECKPOINT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/named_tensors.h"

namespace twist::coordinator {

struct Checkpoint {
  int32_t round = 0;
  common::NamedTensors model;  // parameter name -> tensor
  common::NamedTensors state;  // coordinator-side optimizer state, if any
  std::string path;
};

// Writes the checkpoint of `round` into `job_dir` (created if needed) and
// removes all but the newest `keep` checkpoints.
absl::Status WriteCheckpoint(const std::string& job_dir, int32_t round,
                             const common::NamedTensors& model,
                             const common::NamedTensors& state, int keep = 3);

// The newest checkpoint in `job_dir` that reads back intact, or nullopt when
// the folder holds none (or does not exist). Each newer one that was skipped
// (corrupt, truncated, unreadable) is described in `skipped`. Errors: those
// of ListCheckpoints.
absl::StatusOr<std::optional<Checkpoint>> LoadLatestCheckpoint(
    const std::string& job_dir, std::vector<std::string>* skipped);

// Checkpoint files in `job_dir`, newest round first; empty when the folder
// does not exist. Any other failure to list it (a file in its place, no
// permission, an I/O error) is an error naming the folder and the cause:
// never mistaken for "no checkpoint".
absl::StatusOr<std::vector<std::pair<int32_t, std::string>>> ListCheckpoints(
    const std::string& job_dir);

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_CHECKPOINT_H_
