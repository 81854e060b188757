// Names of job states and modes as users read them, in the client, the
// status pages and logs alike.
#ifndef TWIST_COMMON_JOB_JOB_STATES_H_
#define TWIST_COMMON_JOB_JOB_STATES_H_

#include <string>

#include "twist/v1/job.pb.h"

namespace twist::common {

// "queued", "waiting", "running", "completed", "failed", "cancelled".
std::string JobStateName(twist::v1::JobState state);
// "twist", "local_sgd".
std::string ModeName(twist::v1::Mode mode);
// True for completed, failed and cancelled jobs.
bool IsFinished(twist::v1::JobState state);

}  // namespace twist::common

#endif  // TWIST_COMMON_JOB_JOB_STATES_H_
