// Bookkeeping of one round on the coordinator: which worker holds which slot,
// which updates arrived, which were refused or given up and why. Updates land
// in tensors of the round's update pool (the last round's, reused), are
// checked as they arrive (on the RPC thread, not in the round loop), and are
// handed to the merge in slot order when the round closes. Thread-safe: RPC
// threads deliver, the round loop waits and closes.
#ifndef TWIST_COORDINATOR_ROUND_COLLECTOR_H_
#define TWIST_COORDINATOR_ROUND_COLLECTOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/ist/subnet.h"
#include "common/ist/tensor_pool.h"
#include "common/ist/slot_payload.h"
#include "common/model/model_config.h"
#include "common/model/model_io.h"
#include "common/model/named_tensors.h"
#include "twist/v1/worker_service.pb.h"

namespace twist::coordinator {

// What one slot of a round is for.
struct SlotSpec {
  std::string worker_id;
  std::string worker_name;
  common::SubnetUnits units;
  int64_t bytes_sent = 0;  // payload bytes of the assignment
  // Shift correction: what was added to the slot's output biases before
  // sending; taken off a returned weight update before merging.
  common::NamedTensors bias_shift;
  // How its update travels (common/ist/slot_payload.h).
  common::UpdateForm update_form;
};

// How a slot ended. Only kDelivered updates are merged.
enum class SlotEnd {
  kWaiting,       // not ended yet
  kDelivered,     // its update arrived whole and is well formed
  kRejected,      // its update arrived malformed or with NaN/Inf values
  kRefused,       // its worker reported that it cannot train this job
  kWorkerLost,    // its worker stopped heartbeating
  kWorkerLeft,    // its worker shut down cleanly
  kDeadline,      // the round's straggler deadline passed
  kNotDelivered,  // the assignment could not be sent to the worker
  kInterrupted,   // the job was cancelled or the coordinator is stopping
};

// "delivered", "refused", ... for logs and status pages.
const char* SlotEndName(SlotEnd end);

// A slot as the round closed it.
struct SlotResult {
  SlotEnd end = SlotEnd::kWaiting;
  twist::v1::UpdateHeader header;  // set for delivered, rejected and refused
  common::NamedTensors tensors;    // the update (delivered only)
  int64_t bytes_received = 0;
  double seconds = 0;  // from the hand-out to the update's arrival
  std::string reason;  // why the slot has no update, in words
};

class RoundCollector {
 public:
  // `wire_dtype` is the element type updates travel in (float32 weights, or
  // bfloat16 deltas). With `with_optimizer_state`, an update carries the
  // moments of its units after its parameters (common/ist/slot_payload.h
  // lays an update out). Update buffers come from
  // `update_pool` (may be null: fresh memory), which must outlive the
  // collector.
  RoundCollector(uint64_t incarnation, int64_t job_id, int32_t round,
                 const common::ModelConfig& full, std::vector<SlotSpec> slots,
                 at::ScalarType wire_dtype, bool with_optimizer_state,
                 common::TensorPool* update_pool);

  uint64_t incarnation() const { return incarnation_; }
  int64_t job_id() const { return job_id_; }
  int32_t round() const { return round_; }
  int num_slots() const { return static_cast<int>(slots_.size()); }
  // When the round was handed out (SlotResult::seconds counts from it).
  absl::Time started() const { return started_; }
  const SlotSpec& slot(int i) const { return slots_[i]; }
  const std::vector<SlotSpec>& slots() const { return slots_; }

  // Checks that an update header belongs here (incarnation, job, round, slot
  // and worker all current, slot still open) and returns tensors of the
  // slot's subnetwork shapes to receive it into. FailedPrecondition for a
  // stale or foreign header, AlreadyExists for a second update of a slot.
  absl::StatusOr<common::NamedTensors> Expect(
      const twist::v1::UpdateHeader& h) const;

  // Takes a fully received update: checks it (shapes, element type, and
  // finiteness unless `checked_finite` says the receiver did that already),
  // decodes a compressed one into float32 deltas, and keeps it for the merge. A bad update ends its slot as kRejected and
  // returns InvalidArgument naming the tensor; header errors as Expect.
  absl::Status Deliver(const twist::v1::UpdateHeader& h,
                       common::NamedTensors tensors, int64_t bytes_received,
                       bool checked_finite = false);

  // Ends the slot as kRefused: its worker cannot train this job (`reason`
  // says why: a missing dataset, a LibTorch error).
  absl::Status Refuse(const twist::v1::UpdateHeader& h,
                      const std::string& reason);

  // Ends the slot as kRejected: its update stream was malformed (truncated,
  // chunks out of order). `reason` says how.
  absl::Status Reject(const twist::v1::UpdateHeader& h,
                      const std::string& reason);

  // Gives up on a slot still waiting (`why` is not kDelivered, kRejected or
  // kRefused); nothing more is accepted for it. `detail` completes the reason.
  // A slot that already ended is left alone. The one way a slot is given up.
  void Abandon(int slot, SlotEnd why, const std::string& detail);

  // Waits until every slot has ended, or until `deadline`. True when none is
  // waiting.
  bool WaitAllSettled(absl::Time deadline);

  // Slots still waiting for an update.
  std::vector<int> Outstanding();

  // Slots given up with Abandon (their workers may still be busy with them).
  std::vector<int> Abandoned();

  // Closes the round: further deliveries fail with FailedPrecondition, and
  // the results move out, in slot order.
  std::vector<SlotResult> Close();

 private:
  absl::Status CheckHeader(const twist::v1::UpdateHeader& h) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Ends the header's slot as `end` with `reason`.
  absl::Status End(const twist::v1::UpdateHeader& h, SlotEnd end,
                   const std::string& reason);

  const uint64_t incarnation_;
  const int64_t job_id_;
  const int32_t round_;
  const common::ModelConfig full_;
  const std::vector<SlotSpec> slots_;
  const absl::Time started_ = absl::Now();
  // What an update of slot `slot` holds.
  common::SlotPayload Payload(int slot) const;
  // Checks a received update against `payload`'s layout, decodes it when
  // compressed and checks what it holds is finite (unless `checked_finite`).
  absl::StatusOr<common::NamedTensors> Check(const common::SlotPayload& payload,
                                             common::NamedTensors tensors,
                                             bool checked_finite) const;

  const at::ScalarType wire_dtype_;
  const bool with_optimizer_state_;
  common::TensorPool* const update_pool_;

  mutable absl::Mutex mu_;
  std::vector<SlotResult> results_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_ROUND_COLLECTOR_H_
