// The core tests' main: one intra-op thread per LibTorch call, as the
// in-process workers and the coordinator's threads share the machine's cores.
#include <gtest/gtest.h>

#include "common/model/threads.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  twist::common::ConfigureThreads(1);
  return RUN_ALL_TESTS();
}
