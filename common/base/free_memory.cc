#include "common/base/free_memory.h"

#include <pthread.h>
#include <sched.h>

#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#if defined(TWIST_WITH_JEMALLOC)
#include <jemalloc/jemalloc.h>
#include <sys/types.h>

#include "absl/strings/str_cat.h"
#else
#include <malloc.h>
#endif

namespace twist::common {
namespace {

// The thread of ReturnFreeMemoryWhenIdle, made at the first request and
// never stopped (it waits on its mutex between requests).
class IdleReturner {
 public:
  IdleReturner() { std::thread([this] { Run(); }).detach(); }

  void Request() {
    absl::MutexLock lock(&mu_);
    ++requested_;
  }

  IdleReturns SoFar() {
    absl::MutexLock lock(&mu_);
    return {served_, idle_priority_};
  }

 private:
  void Run() {
    const sched_param param{};  // priority 0, the one SCHED_IDLE takes
    const bool idle =
        pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) == 0;
    for (;;) {
      int64_t serving = 0;
      {
        absl::MutexLock lock(&mu_);
        idle_priority_ = idle;
        mu_.Await(absl::Condition(
            +[](IdleReturner* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) {
              return r->requested_ > r->served_;
            },
            this));
        serving = requested_;
      }
      ReturnFreeMemory();
      absl::MutexLock lock(&mu_);
      served_ = serving;
    }
  }

  absl::Mutex mu_;
  int64_t requested_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t served_ ABSL_GUARDED_BY(mu_) = 0;
  bool idle_priority_ ABSL_GUARDED_BY(mu_) = false;
};

IdleReturner& Returner() {
  static IdleReturner* const returner = new IdleReturner();  // never freed
  return *returner;
}

}  // namespace

void ReturnFreeMemoryWhenIdle() { Returner().Request(); }

IdleReturns IdleReturnsSoFar() { return Returner().SoFar(); }

void ReturnFreeMemory() {
#if defined(TWIST_WITH_JEMALLOC)
  const std::string purge = absl::StrCat("arena.", MALLCTL_ARENAS_ALL, ".purge");
  mallctl(purge.c_str(), nullptr, nullptr, nullptr, 0);
#elif defined(__GLIBC__)
  malloc_trim(0);
#endif
}

void KeepFreePages(bool keep) {
#if defined(TWIST_WITH_JEMALLOC)
  ssize_t configured = -1;  // the process's setting (malloc_conf)
  size_t size = sizeof(configured);
  if (mallctl("opt.dirty_decay_ms", &configured, &size, nullptr, 0) != 0) {
    return;
  }
  ssize_t decay = keep ? -1 : configured;
  ssize_t current = 0;  // new arenas' decay: what the last call set
  size = sizeof(current);
  if (mallctl("arenas.dirty_decay_ms", &current, &size, nullptr, 0) == 0 &&
      current == decay) {
    return;  // setting it again would restart every arena's decay
  }
  unsigned arenas = 0;
  size = sizeof(arenas);
  if (mallctl("arenas.narenas", &arenas, &size, nullptr, 0) != 0) return;
  for (unsigned i = 0; i < arenas; ++i) {  // arenas not made yet refuse
    const std::string name = absl::StrCat("arena.", i, ".dirty_decay_ms");
    mallctl(name.c_str(), nullptr, nullptr, &decay, sizeof(decay));
  }
  mallctl("arenas.dirty_decay_ms", nullptr, nullptr, &decay, sizeof(decay));
#else
  (void)keep;
#endif
}

std::string AllocatorName() {
#if defined(TWIST_WITH_JEMALLOC)
  const char* version = nullptr;
  size_t size = sizeof(version);
  if (mallctl("version", &version, &size, nullptr, 0) == 0 &&
      version != nullptr) {
    return absl::StrCat("jemalloc ", version);
  }
  return "jemalloc";
#else
  return "glibc malloc";
#endif
}

}  // namespace twist::common
