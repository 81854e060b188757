// /metrics in the Prometheus text exposition format (version 0.0.4). Names
// follow Prometheus conventions: a twist_ prefix, base units in the name
// (_seconds, _bytes), _total only on counters.
#ifndef TWIST_COORDINATOR_PROMETHEUS_TEXT_H_
#define TWIST_COORDINATOR_PROMETHEUS_TEXT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "twist/v1/job.pb.h"

namespace twist::coordinator {

// `stale_updates` counts updates refused before reaching a round (another
// incarnation, a round already over).
std::string PrometheusText(const std::vector<twist::v1::Job>& jobs,
                           const std::vector<twist::v1::WorkerInfo>& workers,
                           uint64_t incarnation, int64_t stale_updates = 0);

// A label value with \, " and newlines escaped as the format requires.
std::string EscapeLabelValue(const std::string& value);

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_PROMETHEUS_TEXT_H_
