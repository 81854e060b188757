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

// Blocks of at least 4 MB get pages of their own, returned to the system as
// soon as they are freed (glibc's M_MMAP_THRESHOLD, fixed). By default glibc
// raises that threshold to 32 MB as the process frees large blocks, after
// which a daemon's tensors of 4-32 MB (GPT-2's activations and slices) come
// from heaps that keep freed memory and fragment: measured at GPT-2 small,
// the coordinator's peak then grew by 0.5 GB over 6 rounds and a worker's
// by 0.3 GB. Costs a page fault per 4 KB page of each such block allocated.
// The daemons call it first thing.
void KeepLargeBlocksApart();

}  // namespace twist::common

#endif  // TWIST_COMMON_BASE_FREE_MEMORY_H_
