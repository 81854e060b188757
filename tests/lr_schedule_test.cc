// The learning-rate schedule (common/training/lr_schedule.h): linear warm-up
// to the peak, cosine decay to peak * min_ratio at the last step, and the
// floor after it.
#include "common/training/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>

namespace twist::common {
namespace {

TEST(LrScheduleTest, WarmsUpLinearlyToThePeak) {
  const LrSchedule s{/*peak=*/1e-3, /*min_ratio=*/0.1, /*warmup_steps=*/4,
                     /*total_steps=*/20};
  EXPECT_DOUBLE_EQ(s.At(0), 1e-3 * 1 / 5);
  EXPECT_DOUBLE_EQ(s.At(1), 1e-3 * 2 / 5);
  EXPECT_DOUBLE_EQ(s.At(3), 1e-3 * 4 / 5);
  EXPECT_DOUBLE_EQ(s.At(4), 1e-3);  // the first step after the warm-up
  for (int64_t step = 1; step <= 4; ++step) {
    EXPECT_GT(s.At(step), s.At(step - 1)) << step;
  }
}

TEST(LrScheduleTest, DecaysAlongACosineToTheFloor) {
  const LrSchedule s{/*peak=*/2e-3, /*min_ratio=*/0.1, /*warmup_steps=*/0,
                     /*total_steps=*/100};
  EXPECT_DOUBLE_EQ(s.At(0), 2e-3);
  EXPECT_NEAR(s.At(50), (2e-3 + 2e-4) / 2, 1e-12);  // half way: the mean
  // A quarter of the way: min + (peak - min) * (1 + cos(pi / 4)) / 2.
  EXPECT_NEAR(s.At(25), 2e-4 + 1.8e-3 * (1 + std::sqrt(0.5)) / 2, 1e-12);
  EXPECT_DOUBLE_EQ(s.At(100), 2e-4);
  EXPECT_DOUBLE_EQ(s.At(1000), 2e-4);  // past the end: the floor
  for (int64_t step = 1; step < 100; ++step) {
    EXPECT_LT(s.At(step), s.At(step - 1)) << step;
    EXPECT_GT(s.At(step), 2e-4) << step;
  }
}

TEST(LrScheduleTest, DecayStartsAfterTheWarmUp) {
  const LrSchedule s{/*peak=*/1.0, /*min_ratio=*/0.0, /*warmup_steps=*/10,
                     /*total_steps=*/30};
  EXPECT_DOUBLE_EQ(s.At(10), 1.0);
  EXPECT_NEAR(s.At(20), 0.5, 1e-12);  // half way through the decay
  EXPECT_NEAR(s.At(30), 0.0, 1e-12);
}

TEST(LrScheduleTest, WarmUpAsLongAsTheJobNeverDividesByZero) {
  const LrSchedule s{/*peak=*/1.0, /*min_ratio=*/0.5, /*warmup_steps=*/5,
                     /*total_steps=*/5};
  EXPECT_DOUBLE_EQ(s.At(4), 5.0 / 6);
  EXPECT_DOUBLE_EQ(s.At(5), 0.5);
  const LrSchedule one{/*peak=*/1.0, /*min_ratio=*/0.5, /*warmup_steps=*/0,
                       /*total_steps=*/1};
  EXPECT_DOUBLE_EQ(one.At(0), 1.0);
  EXPECT_DOUBLE_EQ(one.At(1), 0.5);
}

}  // namespace
}  // namespace twist::common
