#include "common/base/free_memory.h"

#include <malloc.h>

namespace twist::common {

void ReturnFreeMemory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace twist::common
