// jemalloc's settings for every process that trains as a worker: the worker
// daemon and the benchmarks that run its training in process, so that they
// measure what the daemon does (ignored by other allocators; common/base/
// free_memory.h). MALLOC_CONF in the environment overrides them.
//
// Freed blocks of every size, the largest activations included, are kept for
// reuse (`oversize_threshold:0`: jemalloc otherwise hands blocks of 8 MB and
// more back at once, and each local step faults in the pages of its
// activations again: 1.6-1.8x as long at GPT-2 small); a background thread
// hands free pages back over about 10 s (`dirty_decay_ms:10000`), and the
// worker all of them once a round, after sending its update, when the
// machine's cores are otherwise idle (ReturnFreeMemoryWhenIdle).
//
// The decay is a trade, which local training settles by model size
// (common/training/local_training.cc, KeepFreePages). It counts the growth of
// the free pages rather than their reuse, so under a training loop that frees
// and reuses the same blocks every step it hands many of them back anyway: a
// 4x128 model's step at context 64, batch 12 takes 0.11-0.15 s with it and
// 0.06 s without it; such a model keeps its free pages. Without it, though,
// freed blocks of sizes a GPT-2-small step does not reuse stay resident (its
// keep-1/2 worker peaked at 2.9-3.2 GB against 2.2-2.5 GB, its keep-1 worker
// at 4.2-4.3 GB against 3.5-3.7 GB), so a large model keeps the decay.
extern "C" const char* malloc_conf =
    "oversize_threshold:0,dirty_decay_ms:10000,muzzy_decay_ms:0,"
    "background_thread:true";
