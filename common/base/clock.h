// Wall-clock time as the API reports it: seconds since the Unix epoch.
#ifndef TWIST_COMMON_BASE_CLOCK_H_
#define TWIST_COMMON_BASE_CLOCK_H_

#include <chrono>

namespace twist::common {

// Seconds since the Unix epoch (microsecond resolution).
double NowSeconds();

// Seconds on the steady clock since `start`: for durations, which must not
// jump when the wall clock is set.
double SecondsSince(std::chrono::steady_clock::time_point start);

}  // namespace twist::common

#endif  // TWIST_COMMON_BASE_CLOCK_H_
