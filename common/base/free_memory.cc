#include "common/base/free_memory.h"

#if defined(TWIST_WITH_JEMALLOC)
#include <jemalloc/jemalloc.h>
#include <sys/types.h>

#include "absl/strings/str_cat.h"
#else
#include <malloc.h>
#endif

namespace twist::common {

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
