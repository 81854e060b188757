#include "coordinator/worker_registry.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/clock.h"

namespace twist::coordinator {
namespace {

using common::NowSeconds;

// A monotonic clock as absl::Time, for time-outs (absl::Now() follows the wall
// clock, which may be stepped).
absl::Time SteadyNow() {
  return absl::UnixEpoch() +
         absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
}

}  // namespace

WorkerRegistry::WorkerRegistry(const Options& options) : options_(options) {}

std::string WorkerRegistry::Join(const twist::v1::JoinRequest& request,
                                 const std::string& address) {
  absl::MutexLock lock(&mu_);
  const std::string id = absl::StrCat("w", next_id_++);
  Worker& w = workers_[id];
  const double now = NowSeconds();
  w.info.set_id(id);
  w.info.set_name(request.name().empty() ? id : request.name());
  w.info.set_device(request.device());
  w.info.set_capacity(request.capacity() > 0 ? request.capacity() : 1.0);
  w.info.set_threads(request.threads());
  w.info.set_address(address);
  w.info.set_joined_at(now);
  w.info.set_last_heartbeat_at(now);
  w.info.set_live(true);
  w.info.set_status("idle");
  w.liveness = {Liveness::State::kLive, ""};
  w.last_heartbeat = SteadyNow();
  SweepLocked();
  return id;
}

void WorkerRegistry::SweepLocked() {
  const absl::Time now = SteadyNow();
  std::vector<std::pair<absl::Time, std::string>> departed;
  for (auto it = workers_.begin(); it != workers_.end();) {
    Worker& w = it->second;
    if (w.info.live()) {
      const double silent = absl::ToDoubleSeconds(now - w.last_heartbeat);
      if (silent > options_.heartbeat_timeout_s) {
        w.info.set_live(false);
        w.info.set_status("dropped");
        w.liveness = {Liveness::State::kTimedOut,
                      absl::StrFormat("no heartbeat for %.1f s (timeout %.1f s)",
                                      silent, options_.heartbeat_timeout_s)};
        w.mailbox.reset();
        w.busy = false;
        w.departed = now;
      }
    }
    if (!w.info.live() &&
        absl::ToDoubleSeconds(now - w.departed) > options_.forget_after_s) {
      it = workers_.erase(it);
      continue;
    }
    if (!w.info.live()) departed.emplace_back(w.departed, it->first);
    ++it;
  }
  if (static_cast<int>(departed.size()) > options_.max_departed) {
    std::sort(departed.begin(), departed.end());
    for (size_t i = 0; i + options_.max_departed < departed.size(); ++i) {
      workers_.erase(departed[i].second);
    }
  }
}

absl::Status WorkerRegistry::Heartbeat(
    const twist::v1::HeartbeatRequest& request) {
  absl::MutexLock lock(&mu_);
  SweepLocked();
  auto it = workers_.find(request.worker_id());
  if (it == workers_.end()) {
    return absl::NotFoundError(
        absl::StrCat("worker ", request.worker_id(),
                     " is unknown to this coordinator: join again"));
  }
  Worker& w = it->second;
  if (!w.info.live()) {
    return absl::NotFoundError(absl::StrCat("worker ", request.worker_id(),
                                            " was dropped (", w.liveness.reason,
                                            "): join again"));
  }
  w.info.set_last_heartbeat_at(NowSeconds());
  w.last_heartbeat = SteadyNow();
  // Between answering an assignment and taking the next, the worker is idle,
  // whatever a heartbeat sent before its answer arrived says.
  if (!w.busy) {
    w.info.set_status("idle");
  } else if (!request.status().empty()) {
    w.info.set_status(request.status());
  }
  w.info.set_resident_parameters(request.resident_parameters());
  return absl::OkStatus();
}

absl::Status WorkerRegistry::Leave(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) {
    return absl::NotFoundError(
        absl::StrCat("worker ", worker_id, " is unknown"));
  }
  it->second.info.set_live(false);
  it->second.info.set_status("left");
  it->second.liveness = {Liveness::State::kLeft, "shut down cleanly"};
  it->second.mailbox.reset();
  it->second.busy = false;
  it->second.departed = SteadyNow();
  return absl::OkStatus();
}

std::vector<twist::v1::WorkerInfo> WorkerRegistry::LiveWorkers() {
  absl::MutexLock lock(&mu_);
  SweepLocked();
  std::vector<std::pair<double, twist::v1::WorkerInfo>> live;
  for (const auto& [id, w] : workers_) {
    if (w.info.live()) live.emplace_back(w.info.joined_at(), w.info);
  }
  // Join order; ids break ties ("w10" after "w9": compare numerically).
  std::stable_sort(live.begin(), live.end(), [](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return std::stoll(a.second.id().substr(1)) <
           std::stoll(b.second.id().substr(1));
  });
  std::vector<twist::v1::WorkerInfo> out;
  for (auto& [t, info] : live) out.push_back(std::move(info));
  return out;
}

std::vector<twist::v1::WorkerInfo> WorkerRegistry::AllWorkers() {
  absl::MutexLock lock(&mu_);
  SweepLocked();
  std::vector<twist::v1::WorkerInfo> out;
  for (const auto& [id, w] : workers_) out.push_back(w.info);
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    if (a.live() != b.live()) return a.live();
    return std::stoll(a.id().substr(1)) < std::stoll(b.id().substr(1));
  });
  return out;
}

Liveness WorkerRegistry::Check(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  SweepLocked();
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) {
    return {Liveness::State::kUnknown, "unknown worker"};
  }
  return it->second.liveness;
}

void WorkerRegistry::Offer(const std::string& worker_id,
                           std::shared_ptr<const Assignment> a) {
  absl::MutexLock lock(&mu_);
  SweepLocked();
  auto it = workers_.find(worker_id);
  if (it == workers_.end() || !it->second.info.live()) return;
  it->second.mailbox = std::move(a);
  it->second.abandon = false;
}

absl::StatusOr<std::shared_ptr<const Assignment>> WorkerRegistry::Take(
    const std::string& worker_id, absl::Duration wait) {
  const absl::Time deadline = absl::Now() + wait;
  absl::MutexLock lock(&mu_);
  for (;;) {
    SweepLocked();
    auto it = workers_.find(worker_id);
    if (it == workers_.end() || !it->second.info.live()) {
      return absl::NotFoundError(
          absl::StrCat("worker ", worker_id,
                       " is not registered or was dropped: join again"));
    }
    Worker& w = it->second;
    if (w.mailbox) {
      std::shared_ptr<const Assignment> a = std::move(w.mailbox);
      w.mailbox.reset();
      w.taken_job = a->header.job_id();
      w.taken_round = a->header.round();
      w.busy = true;
      w.info.set_status("receiving");
      return a;
    }
    // Wake when an assignment arrives, the worker leaves, or the wait ends.
    auto has_mail = [&w]() { return w.mailbox != nullptr || !w.info.live(); };
    if (!mu_.AwaitWithDeadline(absl::Condition(&has_mail), deadline)) {
      return std::shared_ptr<const Assignment>();
    }
  }
}

void WorkerRegistry::Revoke(const std::string& worker_id, int64_t job_id,
                            int32_t round) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  Worker& w = it->second;
  if (w.mailbox && w.mailbox->header.job_id() == job_id &&
      w.mailbox->header.round() == round) {
    w.mailbox.reset();
  }
  if (w.taken_job == job_id && w.taken_round == round && w.busy) {
    w.abandon = true;
    w.busy = false;
    if (w.info.live()) w.info.set_status("idle");
  }
}

void WorkerRegistry::AnswerReceived(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  it->second.busy = false;
  if (it->second.info.live()) it->second.info.set_status("idle");
}

std::optional<std::pair<int64_t, int32_t>> WorkerRegistry::TakeAbandon(
    const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end() || !it->second.abandon) return std::nullopt;
  it->second.abandon = false;
  return std::make_pair(it->second.taken_job, it->second.taken_round);
}

void WorkerRegistry::RecordRound(const std::string& worker_id,
                                 double tokens_per_s) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  it->second.info.set_tokens_per_s(tokens_per_s);
  it->second.info.set_rounds_done(it->second.info.rounds_done() + 1);
}

}  // namespace twist::coordinator
