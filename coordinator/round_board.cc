#include "coordinator/round_board.h"

#include "absl/strings/str_cat.h"

namespace twist::coordinator {

void RoundBoard::Publish(std::shared_ptr<RoundCollector> round) {
  absl::MutexLock lock(&mu_);
  current_ = std::move(round);
}

absl::StatusOr<std::shared_ptr<RoundCollector>> RoundBoard::Find(
    uint64_t incarnation, int64_t job_id, int32_t round) {
  if (incarnation != incarnation_) {
    ++stale_messages_;
    return absl::FailedPreconditionError(
        absl::StrCat("message for coordinator incarnation ", incarnation,
                     " but this is incarnation ", incarnation_,
                     " (the coordinator restarted): dropped"));
  }
  absl::MutexLock lock(&mu_);
  if (current_ == nullptr || current_->job_id() != job_id ||
      current_->round() != round) {
    ++stale_messages_;
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " round ", round,
        " is not the current round: the message is stale (the round ended or "
        "the job stopped) and was dropped"));
  }
  return current_;
}

bool RoundBoard::IsCurrent(uint64_t incarnation, int64_t job_id,
                           int32_t round) {
  absl::MutexLock lock(&mu_);
  return incarnation == incarnation_ && current_ != nullptr &&
         current_->job_id() == job_id && current_->round() == round;
}

}  // namespace twist::coordinator
