// One coordinator per state folder. Two coordinators on one --state_dir
// would both resume the same jobs and write the same checkpoints; the second
// one to start must refuse. The lock is an flock(2) on <state_dir>/lock,
// which the kernel releases when the process ends however it ends (kill -9
// included), so nothing stale is ever left; the file records the holder's
// pid and host for the refusal message.
#ifndef TWIST_COORDINATOR_STATE_LOCK_H_
#define TWIST_COORDINATOR_STATE_LOCK_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace twist::coordinator {

class StateLock {
 public:
  // Takes the lock of `state_dir` (which must exist) for this process.
  // FailedPrecondition naming the folder and the holder (pid and host) when
  // another process holds it; other errors name the lock file.
  static absl::StatusOr<std::unique_ptr<StateLock>> Acquire(
      const std::string& state_dir);

  ~StateLock();
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;

 private:
  explicit StateLock(int fd) : fd_(fd) {}
  const int fd_;
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_STATE_LOCK_H_
