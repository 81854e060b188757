// How long a round waits for its updates (JobSpec.round_deadline_s,
// deadline_factor, deadline_floor_s): the first round waits the whole
// round_deadline_s; later ones deadline_factor times the median time updates
// took over the last few rounds, at least deadline_floor_s and at most
// round_deadline_s.
#ifndef TWIST_COORDINATOR_STRAGGLER_DEADLINE_H_
#define TWIST_COORDINATOR_STRAGGLER_DEADLINE_H_

#include <deque>
#include <string>
#include <vector>

#include "twist/v1/job.pb.h"

namespace twist::coordinator {

class StragglerDeadline {
 public:
  explicit StragglerDeadline(const twist::v1::JobSpec& spec);

  // Seconds the next round waits for updates.
  double Seconds() const;

  // Why a slot was given up at the deadline, e.g. "straggler: round deadline
  // of 12.0 s passed (3.0 x the median update time, floor 10.0 s)".
  std::string Explain(double seconds) const;

  // Learns from one round's accepted update times (seconds from hand-out to
  // arrival); keeps the last five rounds' worth for `slots` slots.
  void Learn(const std::vector<double>& seconds, size_t slots);

 private:
  const double round_deadline_s_;
  const double factor_;
  const double floor_s_;
  std::deque<double> recent_;
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_STRAGGLER_DEADLINE_H_
