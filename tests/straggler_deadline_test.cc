// The straggler deadline (coordinator/straggler_deadline.h): the first round
// waits the whole round_deadline_s; later ones deadline_factor times the
// median update time of recent rounds, clamped to [deadline_floor_s,
// round_deadline_s].
#include "coordinator/straggler_deadline.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/match.h"

namespace twist::coordinator {
namespace {

twist::v1::JobSpec Spec(double round_deadline_s, double factor,
                        double floor_s) {
  twist::v1::JobSpec spec;
  spec.set_round_deadline_s(round_deadline_s);
  spec.set_deadline_factor(factor);
  spec.set_deadline_floor_s(floor_s);
  return spec;
}

TEST(StragglerDeadlineTest, FirstRoundWaitsTheWholeRoundDeadline) {
  const StragglerDeadline d(Spec(60, 3, 10));
  EXPECT_DOUBLE_EQ(d.Seconds(), 60);
}

TEST(StragglerDeadlineTest, LearnsAMultipleOfTheMedianUpdateTime) {
  StragglerDeadline d(Spec(60, 3, 1));
  d.Learn({4, 5, 100}, 3);  // one straggler does not move the median
  EXPECT_DOUBLE_EQ(d.Seconds(), 15);
}

TEST(StragglerDeadlineTest, StaysWithinTheFloorAndTheRoundDeadline) {
  StragglerDeadline fast(Spec(60, 3, 10));
  fast.Learn({0.5, 0.5}, 2);
  EXPECT_DOUBLE_EQ(fast.Seconds(), 10);  // 1.5 s, raised to the floor

  StragglerDeadline slow(Spec(60, 3, 10));
  slow.Learn({40, 50}, 2);
  EXPECT_DOUBLE_EQ(slow.Seconds(), 60);  // 150 s, capped
}

TEST(StragglerDeadlineTest, KeepsOnlyTheLastFiveRounds) {
  StragglerDeadline d(Spec(600, 2, 1));
  d.Learn({100, 100}, 2);  // slow at first
  for (int round = 0; round < 5; ++round) d.Learn({3, 3}, 2);
  EXPECT_DOUBLE_EQ(d.Seconds(), 6);  // the slow round has been forgotten

  StragglerDeadline e(Spec(600, 2, 1));
  for (int round = 0; round < 5; ++round) e.Learn({3, 3}, 2);
  e.Learn({100, 100}, 2);
  e.Learn({100, 100}, 2);
  // Ten times kept: six of 3, four of 100; the median (the upper of ten) is 3.
  EXPECT_DOUBLE_EQ(e.Seconds(), 6);
  e.Learn({100, 100}, 2);  // now four of 3 and six of 100
  EXPECT_DOUBLE_EQ(e.Seconds(), 200);
}

TEST(StragglerDeadlineTest, ExplainsTheDeadline) {
  StragglerDeadline d(Spec(60, 3, 10));
  const std::string first = d.Explain(d.Seconds());
  EXPECT_EQ(first, "straggler: round deadline of 60.0 s passed");

  d.Learn({5, 6}, 2);
  const std::string later = d.Explain(d.Seconds());
  EXPECT_TRUE(absl::StartsWith(later, "straggler: round deadline of 18.0 s"))
      << later;
  EXPECT_TRUE(absl::StrContains(later, "3.0 x the median update time"))
      << later;
  EXPECT_TRUE(absl::StrContains(later, "floor 10.0 s")) << later;
}

}  // namespace
}  // namespace twist::coordinator
