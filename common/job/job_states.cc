#include "common/job/job_states.h"

namespace twist::common {

std::string JobStateName(twist::v1::JobState state) {
  switch (state) {
    case twist::v1::JOB_STATE_QUEUED:
      return "queued";
    case twist::v1::JOB_STATE_WAITING:
      return "waiting";
    case twist::v1::JOB_STATE_RUNNING:
      return "running";
    case twist::v1::JOB_STATE_COMPLETED:
      return "completed";
    case twist::v1::JOB_STATE_FAILED:
      return "failed";
    case twist::v1::JOB_STATE_CANCELLED:
      return "cancelled";
    default:
      return "unknown";
  }
}

std::string ModeName(twist::v1::Mode mode) {
  return mode == twist::v1::MODE_LOCAL_SGD ? "local_sgd" : "twist";
}

bool IsFinished(twist::v1::JobState state) {
  return state == twist::v1::JOB_STATE_COMPLETED ||
         state == twist::v1::JOB_STATE_FAILED ||
         state == twist::v1::JOB_STATE_CANCELLED;
}

}  // namespace twist::common
