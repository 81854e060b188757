// Bookkeeping of one round on the coordinator: which worker holds which slot,
// which updates arrived, which were refused and why, and the merge of the
// accepted ones. Updates are merged in slot order, not arrival order, so a
// round's result does not depend on network timing (floating-point sums are
// not associative). Thread-safe: RPC threads deliver, the round loop waits.
#ifndef TWIST_COORDINATOR_ROUND_COLLECTOR_H_
#define TWIST_COORDINATOR_ROUND_COLLECTOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/merge.h"
#include "common/model_config.h"
#include "common/named_tensors.h"
#include "common/outer_optimizer.h"
#include "common/subnet.h"
#include "twist/v1/job.pb.h"
#include "twist/v1/worker_service.pb.h"

namespace twist::coordinator {

struct SlotSpec {
  std::string worker_id;
  std::string worker_name;
  common::SubnetUnits units;
  int64_t bytes_sent = 0;  // payload bytes of the assignment
  // Shift correction: what was added to the slot's output biases before
  // sending; taken off a returned weight update before merging.
  common::NamedTensors bias_shift;
};

// What a round produced once its updates are merged.
struct RoundOutcome {
  common::MergedDelta merged;
  std::vector<twist::v1::RoundWorker> workers;  // one per slot, slot order
  int accepted = 0;
  double mean_train_loss = 0;  // over accepted updates; NaN when none
  int64_t tokens = 0;
  int64_t bytes_received = 0;
  // Seconds from the collector's creation (the hand-out) to each accepted
  // update's arrival: what the straggler deadline learns from.
  std::vector<double> accepted_seconds;
};

class RoundCollector {
 public:
  // `wire_dtype` is the element type updates travel in (float32, or
  // bfloat16 deltas).
  RoundCollector(uint64_t incarnation, int64_t job_id, int32_t round,
                 const common::ModelConfig& full, std::vector<SlotSpec> slots,
                 at::ScalarType wire_dtype = at::kFloat);

  uint64_t incarnation() const { return incarnation_; }
  int64_t job_id() const { return job_id_; }
  int32_t round() const { return round_; }
  int num_slots() const { return static_cast<int>(slots_.size()); }
  const SlotSpec& slot(int i) const { return slots_[i]; }

  // Checks that an update header belongs here (incarnation, job, round, slot
  // and worker all current, slot still open) and returns empty tensors of the
  // slot's subnetwork shapes to receive it into. FailedPrecondition for a
  // stale or foreign header, AlreadyExists for a second update of a slot.
  absl::StatusOr<common::NamedTensors> Expect(
      const twist::v1::UpdateHeader& h) const;

  // Stores a fully received update for merging. The tensors are validated at
  // merge time; a bad one is refused whole there.
  absl::Status Deliver(const twist::v1::UpdateHeader& h,
                       common::NamedTensors tensors, int64_t bytes_received);

  // Refuses the slot's update: the worker reported that it could not train
  // (header.error()) or its stream was malformed. Recorded with `reason`.
  absl::Status Refuse(const twist::v1::UpdateHeader& h,
                      const std::string& reason);

  // Gives up on a slot (worker lost, deadline): nothing more is accepted for
  // it. A slot already delivered is left alone.
  void Abandon(int slot, const std::string& reason);

  // Waits until every slot is delivered, refused or abandoned, or until
  // `deadline`. True when none is outstanding.
  bool WaitAllSettled(absl::Time deadline);

  // Slots still waiting for an update.
  std::vector<int> Outstanding();

  // Closes the round (further deliveries fail) and merges the accepted
  // updates into a delta against `full_params`, in slot order, leaving
  // `full_params` as they are (RoundOutcome::merged).
  RoundOutcome Merge(const common::NamedTensors& full_params);

  // Closes the round and applies the accepted updates to `full_params`
  // through `outer`: in place with MergeInPlace for plain merging (learning
  // rate 1, no momentum), else the merged delta stepped by the optimizer.
  // RoundOutcome::merged is left empty on the in-place path.
  RoundOutcome MergeInto(const common::NamedTensors& full_params,
                         common::OuterOptimizer& outer);

 private:
  enum class SlotState { kWaiting, kDelivered, kRefused, kAbandoned };
  struct SlotResult {
    SlotState state = SlotState::kWaiting;
    twist::v1::UpdateHeader header;
    common::NamedTensors tensors;
    int64_t bytes_received = 0;
    double seconds = 0;  // from the hand-out to the delivery
    std::string reason;
  };

  RoundOutcome Close(const common::NamedTensors& full_params,
                     common::OuterOptimizer* outer);
  absl::Status CheckHeader(const twist::v1::UpdateHeader& h) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const uint64_t incarnation_;
  const int64_t job_id_;
  const int32_t round_;
  const common::ModelConfig full_;
  const std::vector<SlotSpec> slots_;
  const absl::Time started_ = absl::Now();
  const at::ScalarType wire_dtype_;

  mutable absl::Mutex mu_;
  std::vector<SlotResult> results_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_ROUND_COLLECTOR_H_
