// Job specs: defaults, validation and conversion to the model's shape. A spec
// that cannot run is refused at submit, with a message naming the field and
// the fix, never discovered hours into a job.
#ifndef TWIST_COORDINATOR_JOB_SPEC_H_
#define TWIST_COORDINATOR_JOB_SPEC_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data/dataset.h"
#include "common/job/job_config.h"
#include "common/job/job_fields.h"
#include "common/job/job_states.h"
#include "common/job/round_options.h"
#include "twist/v1/job.pb.h"

namespace twist::coordinator {

// Fills every field left unset with its default (common/job/job_fields.h).
// The dataset's vocabulary and hash are not known there: ResolveJobSpec
// fills those.
using common::ApplyDefaults;
using common::IsFinished;
using common::JobStateName;
using common::ModelConfigOf;
using common::ModeName;
using common::OuterStepOf;
using common::ScalingOf;
using common::TrainingOptionsOf;
using common::WireDtypeOf;

// Checks a spec with defaults applied against its dataset's metadata. Pure:
// reads no files. InvalidArgument naming the first bad field.
absl::Status ValidateJobSpec(const twist::v1::JobSpec& spec,
                             const common::DatasetMeta& meta);

// What SubmitJob runs: the model's shape from init_from (init_from.h), when
// given; defaults; then the dataset at spec.data.path is read on
// this machine (NotFound or DataLoss naming the path when it is missing or
// unreadable), its vocabulary and content hash filled in (or checked, when
// the spec names a hash: FailedPrecondition on a mismatch), then validation.
absl::StatusOr<twist::v1::JobSpec> ResolveJobSpec(twist::v1::JobSpec spec);

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_JOB_SPEC_H_
