// The daemons' memory allocator, and handing the memory it keeps free back
// to the system. The coordinator's main.cc and worker/malloc_conf.cc set the
// jemalloc settings (the `malloc_conf` string jemalloc reads at the first
// allocation; MALLOC_CONF in the environment overrides them):
// docs/architecture.md, "Memory".
#ifndef TWIST_COMMON_BASE_FREE_MEMORY_H_
#define TWIST_COMMON_BASE_FREE_MEMORY_H_

#include <string>

namespace twist::common {

// Returns the free pages the allocator keeps, in every arena, to the system
// (jemalloc: purges every arena's unused pages; glibc: malloc_trim). The
// daemons call it once a round, after the round's big buffers are freed, so
// that what a round freed is not counted in the next round's resident
// memory. Takes milliseconds.
void ReturnFreeMemory();

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
