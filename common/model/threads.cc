#include "common/model/threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <numeric>

namespace twist::common {

void ConfigureThreads(int threads) {
  // OpenBLAS may be the system libblas.so.3 behind LibTorch; look its setter
  // up at run time so nothing links against OpenBLAS directly.
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(
          ::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(1);
  }
  if (threads > 0) at::set_num_threads(threads);
  static bool interop_set = false;  // LibTorch allows setting it only once
  if (!interop_set) {
    interop_set = true;
    try {
      at::set_num_interop_threads(1);
    } catch (...) {
      // Already started by earlier tensor work: keep LibTorch's value.
    }
  }
}

int ParallelForThreads() {
  const int threads = at::get_num_threads();
  // One item per thread: each records which of the team ran it.
  auto ran = std::make_unique<std::atomic<bool>[]>(threads);
  at::parallel_for(0, threads, 1, [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) {
      ran[at::get_thread_num() % threads].store(true);
    }
  });
  int distinct = 0;
  for (int i = 0; i < threads; ++i) distinct += ran[i].load() ? 1 : 0;
  return distinct;
}

void ForEachBalanced(const std::vector<int64_t>& costs,
                     const std::function<void(size_t)>& task) {
  const int threads = std::max(1, at::get_num_threads());
  std::vector<size_t> order(costs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return costs[a] > costs[b]; });
  std::vector<std::vector<size_t>> bins(threads);
  std::vector<int64_t> load(threads, 0);
  for (size_t t : order) {
    const size_t b = std::min_element(load.begin(), load.end()) - load.begin();
    bins[b].push_back(t);
    load[b] += costs[t];
  }
  at::parallel_for(0, threads, 1, [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) {
      for (size_t t : bins[b]) task(t);
    }
  });
}

}  // namespace twist::common
