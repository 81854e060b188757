// Handing memory the process freed back to the system.
#ifndef TWIST_COMMON_BASE_FREE_MEMORY_H_
#define TWIST_COMMON_BASE_FREE_MEMORY_H_

namespace twist::common {

// Returns the free pages the C library's allocator keeps, in every arena
// (glibc's malloc_trim), to the system. The daemons call it once a round:
// buffers freed on gRPC's threads stay in those threads' arenas otherwise,
// and the next round's buffers, taken on other threads, add to them, so
// resident memory would creep up from round to round. Takes milliseconds.
void ReturnFreeMemory();

}  // namespace twist::common

#endif  // TWIST_COMMON_BASE_FREE_MEMORY_H_
