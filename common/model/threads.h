// Thread settings for LibTorch and the BLAS underneath it. On a small machine
// the product of LibTorch's intra-op threads and OpenBLAS's own threads
// oversubscribes the cores; every process sets both once, at start.
#ifndef TWIST_COMMON_MODEL_THREADS_H_
#define TWIST_COMMON_MODEL_THREADS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace twist::common {

// Sets LibTorch's intra-op threads to `threads` (0: leave LibTorch's default,
// the number of cores), inter-op threads to 1, and OpenBLAS's threads to 1
// when OpenBLAS is the loaded BLAS (LibTorch parallelises above it). Call
// before any tensor work.
void ConfigureThreads(int threads);

// The threads at::parallel_for shares work out to from the calling thread:
// at::get_num_threads() where the project is compiled with the OpenMP that
// LibTorch uses, 1 where it is not (ATen/ParallelOpenMP.h runs the loop on the
// calling thread then). The project's own parallel loops (the merge, the update
// codec) run on this many threads.
int ParallelForThreads();

// Runs task(i) once for every i < costs.size(), on at::parallel_for's
// threads: tasks are dealt largest cost first, each to the thread with the
// least cost so far (a tensor's bytes: GPT-2's token embedding alone is a
// third of the model). Which thread runs a task depends on the thread count,
// so a task must write only its own outputs.
void ForEachBalanced(const std::vector<int64_t>& costs,
                     const std::function<void(size_t)>& task);

}  // namespace twist::common

#endif  // TWIST_COMMON_MODEL_THREADS_H_
