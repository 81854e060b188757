#include "coordinator/straggler_deadline.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace twist::coordinator {

StragglerDeadline::StragglerDeadline(const twist::v1::JobSpec& spec)
    : round_deadline_s_(spec.round_deadline_s()),
      factor_(spec.deadline_factor()),
      floor_s_(spec.deadline_floor_s()) {}

double StragglerDeadline::Seconds() const {
  if (recent_.empty()) return round_deadline_s_;
  std::vector<double> sorted(recent_.begin(), recent_.end());
  std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2,
                   sorted.end());
  const double median = sorted[sorted.size() / 2];
  return std::min(round_deadline_s_, std::max(floor_s_, factor_ * median));
}

std::string StragglerDeadline::Explain(double seconds) const {
  if (recent_.empty()) {
    return absl::StrFormat("straggler: round deadline of %.1f s passed",
                           seconds);
  }
  return absl::StrFormat(
      "straggler: round deadline of %.1f s passed (%.1f x the median update "
      "time, floor %.1f s)",
      seconds, factor_, floor_s_);
}

void StragglerDeadline::Learn(const std::vector<double>& seconds,
                              size_t slots) {
  for (double t : seconds) recent_.push_back(t);
  while (recent_.size() > 5 * std::max<size_t>(1, slots)) recent_.pop_front();
}

}  // namespace twist::coordinator
