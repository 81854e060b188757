// The project's own pseudo-random generator. Partitions must be reproducible
// on any platform and standard library, so nothing here uses <random>'s
// distributions (whose outputs are implementation-defined) or std::shuffle.
#ifndef TWIST_COMMON_BASE_RNG_H_
#define TWIST_COMMON_BASE_RNG_H_

#include <cstdint>
#include <initializer_list>
#include <vector>

namespace twist::common {

// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit state advanced by a Weyl
// constant and finalised by a bijective mixer. Fast, small, and well enough
// distributed for shuffling.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t Next();

  // Uniform integer in [0, n) by rejection, so there is no modulo bias.
  // Requires n > 0.
  uint64_t UniformBelow(uint64_t n);

  // Uniform double in [0, 1) with 53 random bits.
  double UniformDouble();

 private:
  uint64_t state_;
};

// The SplitMix64 finaliser: a bijection on 64-bit words.
uint64_t Mix64(uint64_t x);

// Derives one seed from an ordered list of words, e.g. (job seed, round,
// layer, kind). Different lists give unrelated seeds.
uint64_t DeriveSeed(std::initializer_list<uint64_t> words);

// Fisher-Yates shuffle of `values` in place.
void Shuffle(std::vector<int>& values, SplitMix64& rng);

}  // namespace twist::common

#endif  // TWIST_COMMON_BASE_RNG_H_
