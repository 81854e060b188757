// jemalloc's settings for every process that trains as a worker: the worker
// daemon and the benchmarks that run its training in process (ignored by
// other allocators; common/base/free_memory.h). MALLOC_CONF in the
// environment overrides them.
//
// Freed blocks of every size, the largest activations included, are kept for
// reuse (`oversize_threshold:0`: jemalloc otherwise hands blocks of 8 MB and
// more back at once), and none is handed back on a timer
// (`dirty_decay_ms:-1`): jemalloc's decay counts the growth of its free
// pages, not their reuse, so under a training loop that frees and reuses the
// same blocks every step it handed most of them back anyway, and each step
// faulted its activations in again (a 4x128 model's step at context 64,
// batch 12: 0.11-0.15 s with a 10 s decay, 0.06 s without). The worker
// hands every free page back once a round instead, after sending its update
// (ReturnFreeMemory), so what it holds between rounds is what it keeps.
extern "C" const char* malloc_conf = "oversize_threshold:0,dirty_decay_ms:-1";
