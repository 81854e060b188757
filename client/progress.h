// What `twistctl watch` prints: a one-line progress bar per update, with the
// round, losses, throughput and time left.
#ifndef TWIST_CLIENT_PROGRESS_H_
#define TWIST_CLIENT_PROGRESS_H_

#include <string>
#include <vector>

#include "twist/v1/job.pb.h"

namespace twist::client {

// Follows a job's rounds and renders its progress.
class ProgressView {
 public:
  // Takes a finished round (round 0 is the evaluation before training).
  void AddRound(const twist::v1::RoundRecord& round);

  // "[#######.......] round 12/40  train 2.310  val 2.452  12.3k tok/s  ETA
  // 1m20s  running" `width` is the bar's width in characters.
  std::string Render(const twist::v1::Job& job, int width = 24) const;

  // Seconds left: the mean duration of the training rounds so far times the
  // rounds still to run; negative when unknown.
  double EtaSeconds(const twist::v1::Job& job) const;

 private:
  double train_loss_ = -1;
  double val_loss_ = -1;
  double tokens_per_s_ = 0;
  double round_seconds_sum_ = 0;
  int training_rounds_ = 0;
};

// 75 -> "1m15s", 3700 -> "1h01m", 9.5 -> "9.5s".
std::string FormatDuration(double seconds);
// 12345 -> "12.3k", 2.5e6 -> "2.5M".
std::string FormatCount(double count);
// 1536 -> "1.5 KiB".
std::string FormatBytes(double bytes);

}  // namespace twist::client

#endif  // TWIST_CLIENT_PROGRESS_H_
