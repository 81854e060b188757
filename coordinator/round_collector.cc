#include "coordinator/round_collector.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "common/model/finite.h"
#include "common/model/model_io.h"

namespace twist::coordinator {

const char* SlotEndName(SlotEnd end) {
  switch (end) {
    case SlotEnd::kWaiting:
      return "waiting";
    case SlotEnd::kDelivered:
      return "delivered";
    case SlotEnd::kRejected:
      return "rejected";
    case SlotEnd::kRefused:
      return "refused";
    case SlotEnd::kWorkerLost:
      return "worker lost";
    case SlotEnd::kWorkerLeft:
      return "worker left";
    case SlotEnd::kDeadline:
      return "deadline";
    case SlotEnd::kNotDelivered:
      return "not delivered";
    case SlotEnd::kInterrupted:
      return "interrupted";
  }
  return "unknown";
}

RoundCollector::RoundCollector(uint64_t incarnation, int64_t job_id,
                               int32_t round, const common::ModelConfig& full,
                               std::vector<SlotSpec> slots,
                               at::ScalarType wire_dtype,
                               bool with_optimizer_state,
                               common::TensorPool* update_pool)
    : incarnation_(incarnation),
      job_id_(job_id),
      round_(round),
      full_(full),
      slots_(std::move(slots)),
      wire_dtype_(wire_dtype),
      with_optimizer_state_(with_optimizer_state),
      update_pool_(update_pool),
      results_(slots_.size()) {}

common::SlotPayload RoundCollector::Payload(int slot) const {
  return common::SlotPayload(full_, slots_[slot].units, wire_dtype_,
                             with_optimizer_state_, slots_[slot].update_form);
}

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
  if (r.end == SlotEnd::kDelivered || r.end == SlotEnd::kRefused ||
      r.end == SlotEnd::kRejected) {
    return absl::AlreadyExistsError(absl::StrCat(
        "slot ", h.slot(), " of round ", round_, " already has an update"));
  }
  if (r.end != SlotEnd::kWaiting) {
    return absl::FailedPreconditionError(absl::StrCat(
        "slot ", h.slot(), " of round ", round_, " was given up: ", r.reason));
  }
  return absl::OkStatus();
}

absl::StatusOr<common::NamedTensors> RoundCollector::Expect(
    const twist::v1::UpdateHeader& h) const {
  {
    absl::ReaderMutexLock lock(&mu_);
    if (absl::Status s = CheckHeader(h); !s.ok()) return s;
  }
  common::NamedTensors out;
  const common::SlotPayload payload = Payload(h.slot());
  for (const auto& p : payload.update()) {
    const auto options = at::TensorOptions().dtype(p.dtype);
    out.Set(p.name, update_pool_ != nullptr
                        ? update_pool_->Acquire(p.shape, options)
                        : at::empty(p.shape, options));
  }
  return out;
}

absl::Status RoundCollector::Deliver(const twist::v1::UpdateHeader& h,
                                     common::NamedTensors tensors,
                                     int64_t bytes_received,
                                     bool checked_finite) {
  {
    absl::ReaderMutexLock lock(&mu_);
    if (absl::Status s = CheckHeader(h); !s.ok()) return s;
  }
  // The checks read every byte once: on the RPC thread, while other workers
  // are still training, not in the round loop (and the finiteness check, on
  // the wire path, during the copy out of gRPC's buffers).
  absl::StatusOr<common::NamedTensors> checked =
      Check(Payload(h.slot()), std::move(tensors), checked_finite);
  if (!checked.ok()) {
    checked = absl::InvalidArgumentError(
        absl::StrCat("slot ", h.slot(), ": ", checked.status().message()));
  }
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckHeader(h); !s.ok()) return s;
  SlotResult& r = results_[h.slot()];
  r.header = h;
  r.bytes_received = bytes_received;
  r.seconds = absl::ToDoubleSeconds(absl::Now() - started_);
  if (!checked.ok()) {
    r.end = SlotEnd::kRejected;
    r.reason = absl::StrCat("update rejected: ", checked.status().message());
    return checked.status();
  }
  r.end = SlotEnd::kDelivered;
  r.tensors = *std::move(checked);
  return absl::OkStatus();
}

absl::StatusOr<common::NamedTensors> RoundCollector::Check(
    const common::SlotPayload& payload, common::NamedTensors tensors,
    bool checked_finite) const {
  const std::vector<common::PayloadTensor>& shapes = payload.update();
  if (tensors.size() != shapes.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "update holds ", tensors.size(), " tensors, expected ", shapes.size()));
  }
  for (size_t i = 0; i < shapes.size(); ++i) {
    const auto& [name, t] = tensors[i];
    if (name != shapes[i].name || t.sizes().vec() != shapes[i].shape ||
        t.scalar_type() != shapes[i].dtype) {
      return absl::InvalidArgumentError(absl::StrCat(
          "update tensor ", i, " is '", name, "' of dtype ",
          c10::toString(t.scalar_type()), ", expected '", shapes[i].name,
          "' of its subnetwork's shape in ", c10::toString(shapes[i].dtype)));
    }
  }
  if (payload.compressed()) {
    absl::StatusOr<common::NamedTensors> decoded = payload.DecodeUpdate(tensors);
    if (!decoded.ok()) return decoded.status();
    tensors = *std::move(decoded);
    checked_finite = false;  // the leftovers added in
  }
  if (!checked_finite) {
    if (absl::Status s = common::CheckFinite(tensors); !s.ok()) return s;
  }
  return tensors;
}

absl::Status RoundCollector::End(const twist::v1::UpdateHeader& h,
                                 SlotEnd end, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckHeader(h); !s.ok()) return s;
  SlotResult& r = results_[h.slot()];
  r.end = end;
  r.header = h;
  r.reason = reason;
  return absl::OkStatus();
}

absl::Status RoundCollector::Refuse(const twist::v1::UpdateHeader& h,
                                    const std::string& reason) {
  return End(h, SlotEnd::kRefused, reason);
}

absl::Status RoundCollector::Reject(const twist::v1::UpdateHeader& h,
                                    const std::string& reason) {
  return End(h, SlotEnd::kRejected, reason);
}

void RoundCollector::Abandon(int slot, SlotEnd why, const std::string& detail) {
  absl::MutexLock lock(&mu_);
  if (slot < 0 || slot >= static_cast<int>(results_.size())) return;
  SlotResult& r = results_[slot];
  if (r.end != SlotEnd::kWaiting) return;
  r.end = why;
  r.reason = detail;
}

bool RoundCollector::WaitAllSettled(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto settled = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& r : results_) {
      if (r.end == SlotEnd::kWaiting) return false;
    }
    return true;
  };
  return mu_.AwaitWithDeadline(absl::Condition(&settled), deadline);
}

std::vector<int> RoundCollector::Outstanding() {
  absl::MutexLock lock(&mu_);
  std::vector<int> out;
  for (size_t i = 0; i < results_.size(); ++i) {
    if (results_[i].end == SlotEnd::kWaiting) out.push_back(static_cast<int>(i));
  }
  return out;
}

std::vector<int> RoundCollector::Abandoned() {
  absl::MutexLock lock(&mu_);
  std::vector<int> out;
  for (size_t i = 0; i < results_.size(); ++i) {
    switch (results_[i].end) {
      case SlotEnd::kWorkerLost:
      case SlotEnd::kWorkerLeft:
      case SlotEnd::kDeadline:
      case SlotEnd::kNotDelivered:
      case SlotEnd::kInterrupted:
        out.push_back(static_cast<int>(i));
        break;
      default:
        break;
    }
  }
  return out;
}

std::vector<SlotResult> RoundCollector::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  for (SlotResult& r : results_) {
    if (r.end == SlotEnd::kWaiting) {
      r.end = SlotEnd::kInterrupted;
      r.reason = "no update before the round ended";
    }
  }
  return std::move(results_);
}

}  // namespace twist::coordinator
