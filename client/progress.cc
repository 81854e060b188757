#include "client/progress.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace twist::client {

void ProgressView::AddRound(const twist::v1::RoundRecord& round) {
  if (round.has_val_loss()) val_loss_ = round.val_loss();
  if (round.round() == 0) return;
  if (std::isfinite(round.train_loss())) train_loss_ = round.train_loss();
  if (round.duration_s() > 0)
    tokens_per_s_ = round.tokens() / round.duration_s();
  round_seconds_sum_ += round.duration_s();
  ++training_rounds_;
}

double ProgressView::EtaSeconds(const twist::v1::Job& job) const {
  if (training_rounds_ == 0) return -1;
  const int left = job.spec().rounds() - job.round();
  return left <= 0 ? 0 : round_seconds_sum_ / training_rounds_ * left;
}

std::string ProgressView::Render(const twist::v1::Job& job, int width) const {
  const int total = std::max(1, job.spec().rounds());
  const int filled = std::clamp(job.round() * width / total, 0, width);
  std::string line = absl::StrCat("[", std::string(filled, '#'),
                                  std::string(width - filled, '.'), "] round ",
                                  job.round(), "/", job.spec().rounds());
  if (train_loss_ >= 0)
    absl::StrAppend(&line, absl::StrFormat("  train %.3f", train_loss_));
  if (val_loss_ >= 0)
    absl::StrAppend(&line, absl::StrFormat("  val %.3f", val_loss_));
  if (tokens_per_s_ > 0)
    absl::StrAppend(&line, "  ", FormatCount(tokens_per_s_), " tok/s");
  const double eta = EtaSeconds(job);
  if (eta >= 0 && job.round() < job.spec().rounds()) {
    absl::StrAppend(&line, "  ETA ", FormatDuration(eta));
  }
  switch (job.state()) {
    case twist::v1::JOB_STATE_QUEUED:
      absl::StrAppend(&line, "  queued");
      break;
    case twist::v1::JOB_STATE_WAITING:
      absl::StrAppend(&line, "  waiting: ", job.reason());
      break;
    case twist::v1::JOB_STATE_COMPLETED:
      absl::StrAppend(&line, "  completed");
      break;
    case twist::v1::JOB_STATE_FAILED:
      absl::StrAppend(&line, "  FAILED: ", job.reason());
      break;
    case twist::v1::JOB_STATE_CANCELLED:
      absl::StrAppend(&line, "  cancelled");
      break;
    default:
      break;
  }
  return line;
}

std::string FormatDuration(double s) {
  if (s < 59.95)
    return absl::StrFormat("%.1fs", s);  // 59.96 would print as 60.0s
  const int64_t t = static_cast<int64_t>(std::llround(s));
  if (t < 3600) return absl::StrFormat("%dm%02ds", t / 60, t % 60);
  return absl::StrFormat("%dh%02dm", t / 3600, (t % 3600) / 60);
}

std::string FormatCount(double n) {
  // Thresholds sit where rounding to one decimal would reach the next unit.
  if (n < 999.5) return absl::StrFormat("%.0f", n);
  if (n < 999.95e3) return absl::StrFormat("%.1fk", n / 1e3);
  if (n < 999.95e6) return absl::StrFormat("%.1fM", n / 1e6);
  return absl::StrFormat("%.1fG", n / 1e9);
}

std::string FormatBytes(double b) {
  if (b < 1024) return absl::StrFormat("%.0f B", b);
  if (b < 1024.0 * 1024) return absl::StrFormat("%.1f KiB", b / 1024);
  if (b < 1024.0 * 1024 * 1024)
    return absl::StrFormat("%.1f MiB", b / (1024.0 * 1024));
  return absl::StrFormat("%.2f GiB", b / (1024.0 * 1024 * 1024));
}

}  // namespace twist::client
