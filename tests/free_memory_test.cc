// Tests of the allocator: the one the build chose serves LibTorch's tensors,
// and the memory they free goes back to the system when asked.
#include "common/base/free_memory.h"

#include <ATen/ATen.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

#if defined(TWIST_WITH_JEMALLOC)
#include <jemalloc/jemalloc.h>
#endif

namespace twist::common {
namespace {

// This process's resident memory (VmRSS), in bytes.
int64_t ResidentBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  ADD_FAILURE() << "no VmRSS in /proc/self/status";
  return 0;
}

TEST(FreeMemoryTest, NamesTheAllocatorTheBuildChose) {
#if defined(TWIST_WITH_JEMALLOC)
  EXPECT_EQ(AllocatorName().rfind("jemalloc ", 0), 0u) << AllocatorName();
#else
  EXPECT_EQ(AllocatorName(), "glibc malloc");
#endif
}

#if defined(TWIST_WITH_JEMALLOC)
TEST(FreeMemoryTest, LibTorchTensorsComeFromJemalloc) {
  uint64_t before = 0;
  uint64_t after = 0;
  size_t size = sizeof(uint64_t);
  ASSERT_EQ(mallctl("thread.allocated", &before, &size, nullptr, 0), 0);
  const at::Tensor t = at::empty({16 << 20}, at::kFloat);  // [16M], 64 MB
  ASSERT_EQ(mallctl("thread.allocated", &after, &size, nullptr, 0), 0);
  EXPECT_GE(after - before, uint64_t{64} << 20)
      << "LibTorch's CPU allocations do not go through jemalloc: is "
         "libjemalloc linked ahead of the C library?";
}
#endif

TEST(FreeMemoryTest, ReturnsFreedTensorsPagesToTheSystem) {
  const int64_t before = ResidentBytes();
  {
    std::vector<at::Tensor> blocks;
    for (int i = 0; i < 64; ++i) {
      blocks.push_back(at::ones({1 << 20}, at::kFloat));  // [1M], 4 MB each
    }
    ASSERT_GE(ResidentBytes() - before, int64_t{200} << 20);
  }
  ReturnFreeMemory();
  EXPECT_LT(ResidentBytes() - before, int64_t{64} << 20);
}

TEST(FreeMemoryTest, ReturnsFreedPagesInTheBackgroundAtIdlePriority) {
  const int64_t before = ResidentBytes();
  {
    std::vector<at::Tensor> blocks;
    for (int i = 0; i < 64; ++i) {
      blocks.push_back(at::ones({1 << 20}, at::kFloat));  // [1M], 4 MB each
    }
    ASSERT_GE(ResidentBytes() - before, int64_t{200} << 20);
  }
  const int64_t served = IdleReturnsSoFar().served;
  ReturnFreeMemoryWhenIdle();  // returns before the memory is handed back
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (IdleReturnsSoFar().served <= served && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_GT(IdleReturnsSoFar().served, served) << "not served in 60 s";
  EXPECT_TRUE(IdleReturnsSoFar().idle_priority);
  EXPECT_LT(ResidentBytes() - before, int64_t{64} << 20);
}

#if defined(TWIST_WITH_JEMALLOC)
// The decay every arena of this process uses now, and new arenas will.
int64_t Decay(const std::string& name) {
  ssize_t decay = 0;
  size_t size = sizeof(decay);
  EXPECT_EQ(mallctl(name.c_str(), &decay, &size, nullptr, 0), 0) << name;
  return decay;
}

TEST(FreeMemoryTest, KeptFreePagesStayUntilReturned) {
  unsigned arena = 0;
  size_t size = sizeof(arena);
  ASSERT_EQ(mallctl("thread.arena", &arena, &size, nullptr, 0), 0);
  const std::string mine = "arena." + std::to_string(arena) + ".dirty_decay_ms";
  const int64_t configured = Decay("opt.dirty_decay_ms");

  KeepFreePages(true);
  EXPECT_EQ(Decay(mine), -1);
  EXPECT_EQ(Decay("arenas.dirty_decay_ms"), -1);
  ReturnFreeMemory();
  const int64_t before = ResidentBytes();
  {
    std::vector<at::Tensor> blocks;
    for (int i = 0; i < 64; ++i) {
      blocks.push_back(at::ones({1 << 18}, at::kFloat));  // [256K], 1 MB each
    }
  }
  EXPECT_GE(ResidentBytes() - before, int64_t{48} << 20);  // kept for reuse
  ReturnFreeMemory();
  EXPECT_LT(ResidentBytes() - before, int64_t{16} << 20);

  KeepFreePages(false);  // back to the process's setting
  EXPECT_EQ(Decay(mine), configured);
  EXPECT_EQ(Decay("arenas.dirty_decay_ms"), configured);
}
#endif

}  // namespace
}  // namespace twist::common
