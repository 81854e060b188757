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

int64_t FreeMemoryBytes() {
#if defined(TWIST_WITH_JEMALLOC)
  uint64_t epoch = 1;  // refreshes the statistics read below
  size_t size = sizeof(epoch);
  mallctl("epoch", &epoch, &size, &epoch, size);
  size_t dirty_pages = 0, page = 0;
  size = sizeof(size_t);
  const std::string dirty =
      absl::StrCat("stats.arenas.", MALLCTL_ARENAS_ALL, ".pdirty");
  if (mallctl(dirty.c_str(), &dirty_pages, &size, nullptr, 0) != 0 ||
      mallctl("arenas.page", &page, &size, nullptr, 0) != 0) {
    return 0;
  }
  return static_cast<int64_t>(dirty_pages * page);
#else
  return 0;
#endif
}

bool ReturnFreeMemoryAbove(int64_t bytes) {
  if (FreeMemoryBytes() <= bytes) return false;
  ReturnFreeMemory();
  return true;
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
