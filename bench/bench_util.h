// Small helpers shared by the benchmarks: timing, memory, and JSON output.
#ifndef TWIST_BENCH_BENCH_UTIL_H_
#define TWIST_BENCH_BENCH_UTIL_H_

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace twist::bench {

inline double Now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The median wall time of `repeats` runs of `fn` (after one warm-up run).
inline double MedianSeconds(int repeats, const std::function<void()>& fn) {
  fn();
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    const double start = Now();
    fn();
    t.push_back(Now() - start);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Peak resident set size of this process, in bytes.
inline int64_t PeakRssBytes() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

}  // namespace twist::bench

#endif  // TWIST_BENCH_BENCH_UTIL_H_
