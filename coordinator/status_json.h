// The JSON documents of the status endpoint (/api/v1/...), built from the
// same messages the gRPC API returns. States and modes are lower-case words
// ("running", "local_sgd"); times are Unix seconds; an absent loss is null.
#ifndef TWIST_COORDINATOR_STATUS_JSON_H_
#define TWIST_COORDINATOR_STATUS_JSON_H_

#include <nlohmann/json.hpp>
#include <vector>

#include "twist/v1/job.pb.h"

namespace twist::coordinator {

// One entry of /api/v1/jobs.
nlohmann::json JobSummaryJson(const twist::v1::Job& job);

// /api/v1/jobs/{id}: the summary plus "spec", "rounds" and "workers".
nlohmann::json JobDetailJson(const twist::v1::Job& job,
                             const std::vector<twist::v1::WorkerInfo>& workers);

nlohmann::json RoundJson(const twist::v1::RoundRecord& round);
nlohmann::json WorkerJson(const twist::v1::WorkerInfo& worker);

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_STATUS_JSON_H_
