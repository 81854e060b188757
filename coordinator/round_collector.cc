#include "coordinator/round_collector.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/model_io.h"
#include "common/shift_correction.h"

namespace twist::coordinator {

RoundCollector::RoundCollector(uint64_t incarnation, int64_t job_id,
                               int32_t round, const common::ModelConfig& full,
                               std::vector<SlotSpec> slots,
                               at::ScalarType wire_dtype)
    : incarnation_(incarnation),
      job_id_(job_id),
      round_(round),
      full_(full),
      slots_(std::move(slots)),
      wire_dtype_(wire_dtype),
      results_(slots_.size()) {}

absl::Status RoundCollector::CheckHeader(
    const twist::v1::UpdateHeader& h) const {
  if (h.incarnation() != incarnation_) {
    return absl::FailedPreconditionError(
        absl::StrCat("update for coordinator incarnation ", h.incarnation(),
                     " but this coordinator is incarnation ", incarnation_,
                     " (it restarted): the update is stale and was dropped"));
  }
  if (h.job_id() != job_id_ || h.round() != round_) {
    return absl::FailedPreconditionError(
        absl::StrCat("update for job ", h.job_id(), " round ", h.round(),
                     " but the current round is job ", job_id_, " round ",
                     round_, ": the update is stale and was dropped"));
  }
  if (h.slot() < 0 || h.slot() >= static_cast<int>(slots_.size()) ||
      slots_[h.slot()].worker_id != h.worker_id()) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker ", h.worker_id(), " does not hold slot ", h.slot(),
                     " of round ", round_));
  }
  if (closed_) {
    return absl::FailedPreconditionError(
        absl::StrCat("round ", round_, " is over: the update came too late"));
  }
  const SlotResult& r = results_[h.slot()];
  if (r.state == SlotState::kDelivered || r.state == SlotState::kRefused) {
    return absl::AlreadyExistsError(absl::StrCat(
        "slot ", h.slot(), " of round ", round_, " already has an update"));
  }
  if (r.state == SlotState::kAbandoned) {
    return absl::FailedPreconditionError(absl::StrCat(
        "slot ", h.slot(), " of round ", round_, " was given up: ", r.reason));
  }
  return absl::OkStatus();
}

absl::StatusOr<common::NamedTensors> RoundCollector::Expect(
    const twist::v1::UpdateHeader& h) const {
  absl::ReaderMutexLock lock(&mu_);
  if (absl::Status s = CheckHeader(h); !s.ok()) return s;
  common::NamedTensors out;
  const common::ModelConfig sub =
      common::SubnetConfig(full_, slots_[h.slot()].units);
  for (const auto& p : common::ParameterShapes(sub)) {
    out.Set(p.name, at::empty(p.shape, at::TensorOptions().dtype(wire_dtype_)));
  }
  return out;
}

absl::Status RoundCollector::Deliver(const twist::v1::UpdateHeader& h,
                                     common::NamedTensors tensors,
                                     int64_t bytes_received) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckHeader(h); !s.ok()) return s;
  SlotResult& r = results_[h.slot()];
  r.state = SlotState::kDelivered;
  r.header = h;
  r.tensors = std::move(tensors);
  r.bytes_received = bytes_received;
  r.seconds = absl::ToDoubleSeconds(absl::Now() - started_);
  return absl::OkStatus();
}

absl::Status RoundCollector::Refuse(const twist::v1::UpdateHeader& h,
                                    const std::string& reason) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckHeader(h); !s.ok()) return s;
  SlotResult& r = results_[h.slot()];
  r.state = SlotState::kRefused;
  r.header = h;
  r.reason = reason;
  return absl::OkStatus();
}

void RoundCollector::Abandon(int slot, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  SlotResult& r = results_[slot];
  if (r.state != SlotState::kWaiting) return;
  r.state = SlotState::kAbandoned;
  r.reason = reason;
}

bool RoundCollector::WaitAllSettled(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto settled = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& r : results_) {
      if (r.state == SlotState::kWaiting) return false;
    }
    return true;
  };
  return mu_.AwaitWithDeadline(absl::Condition(&settled), deadline);
}

std::vector<int> RoundCollector::Outstanding() {
  absl::MutexLock lock(&mu_);
  std::vector<int> out;
  for (size_t i = 0; i < results_.size(); ++i) {
    if (results_[i].state == SlotState::kWaiting)
      out.push_back(static_cast<int>(i));
  }
  return out;
}

RoundOutcome RoundCollector::Merge(const common::NamedTensors& full_params) {
  return Close(full_params, /*outer=*/nullptr);
}

RoundOutcome RoundCollector::MergeInto(const common::NamedTensors& full_params,
                                       common::OuterOptimizer& outer) {
  return Close(full_params, &outer);
}

RoundOutcome RoundCollector::Close(const common::NamedTensors& full_params,
                                   common::OuterOptimizer* outer) {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  RoundOutcome out;
  // The delivered updates, in slot order; reduced-precision ones are deltas,
  // widened to the model's precision.
  std::vector<int> delivered;
  std::vector<common::NamedTensors> widened;
  std::vector<common::UpdateToMerge> updates;
  widened.reserve(slots_.size());
  for (size_t i = 0; i < slots_.size(); ++i) {
    SlotResult& r = results_[i];
    if (r.state != SlotState::kDelivered) continue;
    common::NamedTensors update;
    for (const auto& [name, t] : r.tensors) {
      update.Set(name, t.scalar_type() == at::kFloat ? t : t.to(at::kFloat));
    }
    if (!r.header.deltas()) {
      common::ApplyBiasShifts(slots_[i].bias_shift, update, /*sign=*/-1.0);
    }
    widened.push_back(std::move(update));
    delivered.push_back(static_cast<int>(i));
  }
  for (size_t k = 0; k < delivered.size(); ++k) {
    updates.push_back({&slots_[delivered[k]].units, &widened[k],
                       results_[delivered[k]].header.deltas()});
  }
  std::vector<absl::Status> statuses;
  const bool plain = outer != nullptr &&
                     outer->options().learning_rate == 1.0 &&
                     outer->options().momentum == 0.0;
  if (plain) {
    statuses = common::MergeInPlace(full_, full_params, updates);
  } else {
    common::SubnetMerger merger(full_, full_params);
    for (const auto& u : updates) {
      statuses.push_back(u.is_delta ? merger.AddDeltas(*u.units, *u.tensors)
                                    : merger.AddWeights(*u.units, *u.tensors));
    }
    out.merged = merger.Finish();
    if (outer != nullptr) outer->Step(out.merged, full_params);
  }

  double loss_sum = 0;
  size_t next = 0;  // index into delivered / statuses
  for (size_t i = 0; i < slots_.size(); ++i) {
    SlotResult& r = results_[i];
    twist::v1::RoundWorker w;
    w.set_worker_id(slots_[i].worker_id);
    w.set_worker_name(slots_[i].worker_name);
    w.set_slot(static_cast<int32_t>(i));
    w.set_bytes_sent(slots_[i].bytes_sent);
    w.set_parameters(
        common::SubnetConfig(full_, slots_[i].units).NumParameters());
    if (r.state == SlotState::kDelivered || r.state == SlotState::kRefused) {
      w.set_train_loss(r.header.train_loss());
      w.set_tokens(r.header.tokens());
      w.set_compute_s(r.header.compute_s());
      w.set_receive_s(r.header.receive_s());
      w.set_send_s(r.header.send_s());
      w.set_bytes_received(r.bytes_received);
      // What the worker says it held, not what it was sent.
      if (r.header.parameters() > 0) w.set_parameters(r.header.parameters());
      out.bytes_received += r.bytes_received;
    }
    if (r.state == SlotState::kDelivered) {
      const absl::Status& s = statuses[next++];
      w.set_seconds(r.seconds);
      if (s.ok()) {
        w.set_accepted(true);
        ++out.accepted;
        out.accepted_seconds.push_back(r.seconds);
        loss_sum += r.header.train_loss();
        out.tokens += r.header.tokens();
      } else {
        w.set_reason(absl::StrCat("update rejected: ", s.message()));
      }
      r.tensors = common::NamedTensors();  // free the memory early
    } else {
      w.set_reason(r.state == SlotState::kWaiting
                       ? "no update before the round ended"
                       : r.reason);
    }
    out.workers.push_back(std::move(w));
  }
  out.mean_train_loss = out.accepted > 0
                            ? loss_sum / out.accepted
                            : std::numeric_limits<double>::quiet_NaN();
  return out;
}

}  // namespace twist::coordinator
