#include "common/base/rng.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"

namespace twist::common {
namespace {

TEST(RngTest, SplitMix64MatchesReferenceSequence) {
  // First outputs of the reference splitmix64.c for seed 0.
  SplitMix64 rng(0);
  EXPECT_EQ(rng.Next(), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(rng.Next(), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(rng.Next(), 0x06c45d188009454fULL);
}

TEST(RngTest, UniformBelowStaysInRangeAndHitsEveryValue) {
  SplitMix64 rng(42);
  std::vector<int> hits(7, 0);
  for (int i = 0; i < 7000; ++i) {
    const uint64_t v = rng.UniformBelow(7);
    ASSERT_LT(v, 7u);
    ++hits[v];
  }
  for (int h : hits) {
    EXPECT_GT(h, 850);  // expected 1000 each
    EXPECT_LT(h, 1150);
  }
}

TEST(RngTest, UniformDoubleInUnitInterval) {
  SplitMix64 rng(7);
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    const double x = rng.UniformDouble();
    ASSERT_GE(x, 0.0);
    ASSERT_LT(x, 1.0);
    sum += x;
  }
  EXPECT_NEAR(sum / 10000, 0.5, 0.02);
}

TEST(RngTest, DeriveSeedDependsOnEveryWordAndItsPosition) {
  const uint64_t base = DeriveSeed({1, 2, 3, 0});
  EXPECT_EQ(base, DeriveSeed({1, 2, 3, 0}));
  EXPECT_NE(base, DeriveSeed({1, 2, 3, 1}));
  EXPECT_NE(base, DeriveSeed({1, 2, 4, 0}));
  EXPECT_NE(base, DeriveSeed({2, 1, 3, 0}));
  EXPECT_NE(base, DeriveSeed({1, 2, 3}));
}

TEST(RngTest, ShuffleIsAPermutationAndDeterministic) {
  std::vector<int> a(50), b(50);
  std::iota(a.begin(), a.end(), 0);
  std::iota(b.begin(), b.end(), 0);
  SplitMix64 ra(9), rb(9);
  Shuffle(a, ra);
  Shuffle(b, rb);
  EXPECT_EQ(a, b);
  std::vector<int> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sorted[i], i);
  std::vector<int> identity(50);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(a, identity);
}

}  // namespace
}  // namespace twist::common
