// A job that starts from weights in a file (JobSpec.init_from): at submit,
// the model fields it leaves out are read from the file and the ones it sets
// are checked against it, every tensor is checked against the model, and the
// file's SHA-256 is recorded; when the job starts (or restarts before its
// first checkpoint) the same file, unchanged, gives the model's weights.
#ifndef TWIST_COORDINATOR_INIT_FROM_H_
#define TWIST_COORDINATOR_INIT_FROM_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/named_tensors.h"
#include "twist/v1/job.pb.h"

namespace twist::coordinator {

// Before defaults: fills model.n_layer, n_embd, block_size, vocab_size,
// n_head and activation from spec->init_from() where they are 0 (n_head from
// the file's metadata or the config.json beside it), checks every tensor
// against the model, and records init_from_sha256. InvalidArgument naming
// init_from for an unreadable file, a spec field that disagrees with the
// file, heads that neither the spec nor the file give, or a tensor that does
// not fit (common/model/weights_import.h). Nothing to do without init_from.
absl::Status ApplyInitFrom(twist::v1::JobSpec* spec);

// The job's starting parameters from its init_from file, named and laid out
// as the model's. FailedPrecondition when the file is gone or its SHA-256
// differs from the one recorded at submit.
absl::StatusOr<common::NamedTensors> LoadInitFrom(
    const twist::v1::JobSpec& spec);

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_INIT_FROM_H_
