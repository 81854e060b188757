// The daemons' memory allocator, and handing the memory it keeps free back
// to the system. The coordinator's main.cc and worker/malloc_conf.cc set the
// jemalloc settings (the `malloc_conf` string jemalloc reads at the first
// allocation; MALLOC_CONF in the environment overrides them):
// docs/architecture.md, "Memory".
#ifndef TWIST_COMMON_BASE_FREE_MEMORY_H_
#define TWIST_COMMON_BASE_FREE_MEMORY_H_

#include <cstdint>
#include <string>

namespace twist::common {

// Returns the free pages the allocator keeps, in every arena, to the system
// (jemalloc: purges every arena's unused pages; glibc: malloc_trim). The
// daemons call it once a round, after the round's big buffers are freed, so
// that what a round freed is not counted in the next round's resident
// memory. Takes milliseconds.
void ReturnFreeMemory();

// ReturnFreeMemory on a thread of its own that runs only when no other
// thread of the machine wants a core (SCHED_IDLE); returns at once. A worker
// hands its round's buffers back this way after sending its update: a
// coordinator on the same cores is merging then, and the hand-back (page
// tables torn down for gigabytes) would take a core from it. Requests made
// while one is under way are served by the next.
void ReturnFreeMemoryWhenIdle();

// What ReturnFreeMemoryWhenIdle has done: the requests served so far, and
// whether its thread runs at idle priority (false where the system refused).
struct IdleReturns {
  int64_t served = 0;
  bool idle_priority = false;
};
IdleReturns IdleReturnsSoFar();

// With `keep`, free pages stay for reuse until ReturnFreeMemory; without, they
// go back on the allocator's timer as the process's settings say (jemalloc's
// dirty_decay_ms, in every arena and those made later; nothing under glibc).
// A call that changes nothing leaves the arenas alone.
void KeepFreePages(bool keep);

// The allocator this binary uses, for the daemons' start-up line:
// "jemalloc 5.3.0-..." or "glibc malloc".
std::string AllocatorName();

}  // namespace twist::common

#endif  // TWIST_COMMON_BASE_FREE_MEMORY_H_
