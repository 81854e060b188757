// Tests of the coordinator's learned worker speeds (quota: learned).
#include "coordinator/worker_speeds.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace twist::coordinator {
namespace {

TEST(WorkerSpeedsTest, EqualUntilMeasuredThenInProportion) {
  WorkerSpeeds speeds;
  EXPECT_EQ(speeds.Capacities({"a", "b"}), (std::vector<double>{1, 1}));
  speeds.Observe("a", 600, 2);  // 300 per second
  speeds.Observe("b", 600, 6);  // 100 per second
  EXPECT_EQ(speeds.Capacities({"a", "b"}), (std::vector<double>{300, 100}));
  // A worker not measured yet counts as the mean of those measured.
  EXPECT_EQ(speeds.Capacities({"b", "new", "a"}),
            (std::vector<double>{100, 200, 300}));
}

// A worker that slows to a third of its speed: its learned speed moves
// halfway to the new one each round (half the weight on the newest update):
// 200, 150, 125, 112.5, within 10% of the new speed after four rounds.
TEST(WorkerSpeedsTest, FollowsAWorkerThatSlowsDownWithinAFewRounds) {
  WorkerSpeeds speeds;
  for (int r = 0; r < 5; ++r) speeds.Observe("w", 300, 1);
  EXPECT_DOUBLE_EQ(speeds.Speed("w"), 300);
  std::vector<double> seen;
  for (int r = 0; r < 4; ++r) {
    speeds.Observe("w", 300, 3);
    seen.push_back(speeds.Speed("w"));
  }
  EXPECT_DOUBLE_EQ(seen[0], 200);
  EXPECT_DOUBLE_EQ(seen[1], 150);
  EXPECT_LT(seen[3], 1.15 * 100);
  // And back up when it speeds up again.
  for (int r = 0; r < 4; ++r) speeds.Observe("w", 300, 1);
  EXPECT_GT(speeds.Speed("w"), 0.9 * 300);
}

TEST(WorkerSpeedsTest, IgnoresUpdatesWithoutWorkOrTime) {
  WorkerSpeeds speeds;
  const double inf = std::numeric_limits<double>::infinity();
  speeds.Observe("w", 0, 1);
  speeds.Observe("w", 100, 0);
  speeds.Observe("w", 100, -1);
  speeds.Observe("w", std::nan(""), 1);
  speeds.Observe("w", 100, inf);
  EXPECT_EQ(speeds.Speed("w"), 0);
  EXPECT_EQ(speeds.Capacities({"w"}), (std::vector<double>{1}));
}

}  // namespace
}  // namespace twist::coordinator
