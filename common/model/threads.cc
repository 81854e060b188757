#include "common/model/threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

namespace twist::common {

void ConfigureThreads(int threads) {
  // OpenBLAS may be the system libblas.so.3 behind LibTorch; look its setter
  // up at run time so nothing links against OpenBLAS directly.
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(
          ::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(1);
  }
  if (threads > 0) at::set_num_threads(threads);
  static bool interop_set = false;  // LibTorch allows setting it only once
  if (!interop_set) {
    interop_set = true;
    try {
      at::set_num_interop_threads(1);
    } catch (...) {
      // Already started by earlier tensor work: keep LibTorch's value.
    }
  }
}

}  // namespace twist::common
