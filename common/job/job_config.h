// What a job spec means for the model and for local training, shared by the
// coordinator (which plans rounds) and the workers (which train them).
#ifndef TWIST_COMMON_JOB_JOB_CONFIG_H_
#define TWIST_COMMON_JOB_JOB_CONFIG_H_

#include <cstdint>

#include "common/training/local_training.h"
#include "common/model/model_config.h"
#include "common/ist/subnet.h"
#include "twist/v1/job.pb.h"

namespace twist::common {

// The full model's shape for a spec with defaults applied.
ModelConfig ModelConfigOf(const twist::v1::JobSpec& spec);

PartialSumScaling ScalingOf(const twist::v1::JobSpec& spec);

// The training options of one slot in one round (1-based): the job's single
// learning-rate schedule over rounds * local_steps steps, positioned at the
// round's first step.
LocalTrainingOptions TrainingOptionsOf(const twist::v1::JobSpec& spec,
                                       int32_t round, int32_t slot);

}  // namespace twist::common

#endif  // TWIST_COMMON_JOB_JOB_CONFIG_H_
