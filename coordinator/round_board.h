// The round in progress, as the worker services see it: the round loop
// publishes each round's collector here, and an update finds its round
// through Find, which also tells a stale update (another incarnation, job or
// round) from a current one. The only way from the network to a round.
#ifndef TWIST_COORDINATOR_ROUND_BOARD_H_
#define TWIST_COORDINATOR_ROUND_BOARD_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/round_collector.h"

namespace twist::coordinator {

class RoundBoard {
 public:
  explicit RoundBoard(uint64_t incarnation) : incarnation_(incarnation) {}

  uint64_t incarnation() const { return incarnation_; }

  // Makes `round` current (nullptr: no round in progress).
  void Publish(std::shared_ptr<RoundCollector> round);

  // The current round when it is (job_id, round) of this incarnation;
  // otherwise FailedPrecondition saying why the message is stale, counted in
  // stale_messages().
  absl::StatusOr<std::shared_ptr<RoundCollector>> Find(uint64_t incarnation,
                                                       int64_t job_id,
                                                       int32_t round);

  // Whether (job_id, round) of this incarnation is the current round; not a
  // message, so not counted in stale_messages().
  bool IsCurrent(uint64_t incarnation, int64_t job_id, int32_t round);

  // Messages for a round that was not current, since start.
  int64_t stale_messages() const { return stale_messages_.load(); }

 private:
  const uint64_t incarnation_;
  absl::Mutex mu_;
  std::shared_ptr<RoundCollector> current_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> stale_messages_{0};
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_ROUND_BOARD_H_
