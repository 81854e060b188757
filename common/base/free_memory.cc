#include "common/base/free_memory.h"

#if defined(TWIST_WITH_JEMALLOC)
#include <jemalloc/jemalloc.h>

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
