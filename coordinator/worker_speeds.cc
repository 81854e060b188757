#include "coordinator/worker_speeds.h"

#include <cmath>

namespace twist::coordinator {

void WorkerSpeeds::Observe(const std::string& worker_id, double work,
                           double compute_s) {
  if (!(work > 0) || !(compute_s > 0) || !std::isfinite(work) ||
      !std::isfinite(compute_s)) {
    return;
  }
  const double speed = work / compute_s;
  auto [it, first] = speeds_.emplace(worker_id, speed);
  if (!first) {
    it->second = kNewestWeight * speed + (1 - kNewestWeight) * it->second;
  }
}

std::vector<double> WorkerSpeeds::Capacities(
    const std::vector<std::string>& worker_ids) const {
  double sum = 0;
  int known = 0;
  for (const std::string& id : worker_ids) {
    if (const double s = Speed(id); s > 0) {
      sum += s;
      ++known;
    }
  }
  std::vector<double> out;
  out.reserve(worker_ids.size());
  for (const std::string& id : worker_ids) {
    const double s = Speed(id);
    out.push_back(known == 0 ? 1.0 : s > 0 ? s : sum / known);
  }
  return out;
}

double WorkerSpeeds::Speed(const std::string& worker_id) const {
  auto it = speeds_.find(worker_id);
  return it == speeds_.end() ? 0.0 : it->second;
}

}  // namespace twist::coordinator
