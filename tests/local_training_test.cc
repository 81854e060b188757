// Tests of local training's allocator policy (common/training/
// local_training.cc): a small model keeps its free pages between local steps,
// a large one leaves them to the allocator's timed decay.
#include "common/training/local_training.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/data/token_file.h"
#include "common/model/model_config.h"
#include "tests/test_models.h"

#if defined(TWIST_WITH_JEMALLOC)
#include <jemalloc/jemalloc.h>
#include <sys/types.h>
#endif

namespace twist::common {
namespace {

#if defined(TWIST_WITH_JEMALLOC)
// The decay new arenas get (KeepFreePages sets it with every arena's).
int64_t Decay(const char* name) {
  ssize_t decay = 0;
  size_t size = sizeof(decay);
  EXPECT_EQ(mallctl(name, &decay, &size, nullptr, 0), 0) << name;
  return decay;
}

TEST(LocalTrainingTest, SmallModelsKeepFreePagesLargeOnesDecay) {
  const std::string dir = twist::testing::MakeTempDir();
  std::vector<uint16_t> tokens(1 << 12);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = (i * 7 + i / 13) % 256;
  ASSERT_TRUE(WriteTokenFile(dir + "/train.bin", tokens).ok());
  auto file = TokenFile::Open(dir + "/train.bin");
  ASSERT_TRUE(file.ok());
  LocalTrainingOptions options;
  options.steps = 1;
  options.batch_size = 1;
  options.context = 8;

  // About 0.8M parameters: 3 MB.
  Gpt small = twist::testing::MakeModel(twist::testing::SmallConfig(), 1);
  ASSERT_TRUE(TrainLocalSteps(*small, **file, options).ok());
  EXPECT_EQ(Decay("arenas.dirty_decay_ms"), -1);

  // 21M parameters: 84 MB, over the 64 MB below which pages are kept.
  const ModelConfig large = ModelConfig::Full(1, 1, 1024, 8, 8192);
  ASSERT_GT(large.NumParameters() * 4, int64_t{64} << 20);
  Gpt big = twist::testing::MakeModel(large, 1);
  ASSERT_TRUE(TrainLocalSteps(*big, **file, options).ok());
  EXPECT_EQ(Decay("arenas.dirty_decay_ms"), Decay("opt.dirty_decay_ms"));
  std::filesystem::remove_all(dir);
}
#endif

}  // namespace
}  // namespace twist::common
