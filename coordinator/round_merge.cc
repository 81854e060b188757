#include "coordinator/round_merge.h"

#include <limits>

#include "common/base/status_macros.h"
#include "common/ist/shift_correction.h"
#include "common/ist/slot_payload.h"

namespace twist::coordinator {
namespace {

// The slot's line in the round record.
twist::v1::RoundWorker Describe(const common::ModelConfig& full,
                                const SlotSpec& slot, const SlotResult& r,
                                int index) {
  twist::v1::RoundWorker w;
  w.set_worker_id(slot.worker_id);
  w.set_worker_name(slot.worker_name);
  w.set_slot(index);
  w.set_bytes_sent(slot.bytes_sent);
  w.set_parameters(common::SubnetConfig(full, slot.units).NumParameters());
  if (r.end == SlotEnd::kDelivered || r.end == SlotEnd::kRejected ||
      r.end == SlotEnd::kRefused) {
    w.set_train_loss(r.header.train_loss());
    w.set_tokens(r.header.tokens());
    w.set_compute_s(r.header.compute_s());
    w.set_steps_ahead(r.header.steps_ahead());
    w.set_receive_s(r.header.receive_s());
    w.set_send_s(r.header.send_s());
    w.set_bytes_received(r.bytes_received);
    // What the worker says it held, not what it was sent.
    if (r.header.parameters() > 0) w.set_parameters(r.header.parameters());
  }
  if (r.end == SlotEnd::kDelivered) {
    w.set_accepted(true);
    w.set_seconds(r.seconds);
  } else {
    w.set_reason(r.reason);
    if (r.end == SlotEnd::kRejected) w.set_seconds(r.seconds);
  }
  return w;
}

}  // namespace

absl::StatusOr<RoundOutcome> MergeRound(const common::ModelConfig& full,
                                        const std::vector<SlotSpec>& slots,
                                        std::vector<SlotResult>& results,
                                        const MergeTargets& targets) {
  // Each delivered update, split into its parameters and its moments.
  std::vector<common::PayloadParts> parts;
  parts.reserve(slots.size());
  std::vector<common::SliceUpdate> updates;
  std::vector<common::OptimizerStateUpdate> states;
  for (size_t i = 0; i < slots.size(); ++i) {
    SlotResult& r = results[i];
    if (r.end != SlotEnd::kDelivered) continue;
    const bool delta = r.header.deltas();
    if (!delta) {
      common::ApplyBiasShifts(slots[i].bias_shift, r.tensors, /*sign=*/-1.0);
    }
    const common::PayloadParts& p =
        parts.emplace_back(common::SlotPayload::Split(r.tensors));
    updates.push_back({&slots[i].units, &p.parameters, delta});
    states.push_back({&slots[i].units, &p.optimizer_state, delta});
  }
  TWIST_RETURN_IF_ERROR(common::MergeUpdates(full, *targets.params, updates,
                                             targets.step, targets.velocity,
                                             targets.scratch));
  if (common::FullOptimizerState* state = targets.optimizer_state) {
    TWIST_RETURN_IF_ERROR(
        state->Merge(full, states, targets.local_steps, targets.scratch));
  }

  RoundOutcome out;
  double loss_sum = 0;
  for (size_t i = 0; i < slots.size(); ++i) {
    SlotResult& r = results[i];
    out.workers.push_back(Describe(full, slots[i], r, static_cast<int>(i)));
    out.ends.push_back(r.end);
    out.bytes_received += r.bytes_received;
    if (r.end == SlotEnd::kDelivered) {
      ++out.accepted;
      out.accepted_seconds.push_back(r.seconds);
      loss_sum += r.header.train_loss();
      out.tokens += r.header.tokens();
    }
    r.tensors = common::NamedTensors();  // back to the pool
  }
  out.mean_train_loss = out.accepted > 0
                            ? loss_sum / out.accepted
                            : std::numeric_limits<double>::quiet_NaN();
  return out;
}

}  // namespace twist::coordinator
