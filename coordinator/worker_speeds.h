// How fast each worker trains, learned from the updates it has delivered
// (JobSpec.quota QUOTA_LEARNED): the work of an update, its parameters times
// its tokens, over the update's compute seconds, averaged exponentially over
// the worker's updates (half the weight on the newest), so that a worker
// that slows down or speeds up is followed within a few rounds. Quotas in
// proportion to these speeds give every worker the same compute time as far
// as a subnetwork's work grows with its units (the replicated embedding and
// layer norms do not: with a large vocabulary a fast worker ends a little
// later than a slow one).
#ifndef TWIST_COORDINATOR_WORKER_SPEEDS_H_
#define TWIST_COORDINATOR_WORKER_SPEEDS_H_

#include <map>
#include <string>
#include <vector>

namespace twist::coordinator {

class WorkerSpeeds {
 public:
  // The weight of the newest update in a worker's average.
  static constexpr double kNewestWeight = 0.5;

  // One accepted update of `worker_id`: `work` (parameters x tokens) done in
  // `compute_s` seconds. Ignored unless both are positive and finite.
  void Observe(const std::string& worker_id, double work, double compute_s);

  // The relative speeds of a round's workers, in their order: as learned; a
  // worker not measured yet counts as the mean of those measured, and with
  // none measured every worker counts 1 (equal quotas).
  std::vector<double> Capacities(const std::vector<std::string>& worker_ids) const;

  // A worker's learned speed (work per second); 0 when not measured.
  double Speed(const std::string& worker_id) const;

 private:
  std::map<std::string, double> speeds_;
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_WORKER_SPEEDS_H_
