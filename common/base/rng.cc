#include "common/base/rng.h"

#include <cstddef>
#include <utility>

namespace twist::common {

uint64_t Mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t SplitMix64::Next() {
  state_ += 0x9e3779b97f4a7c15ULL;
  return Mix64(state_);
}

uint64_t SplitMix64::UniformBelow(uint64_t n) {
  // Accept only draws below the largest multiple of n that fits in 2^64.
  const uint64_t limit = UINT64_MAX - (UINT64_MAX % n);
  uint64_t x = Next();
  while (x >= limit) x = Next();
  return x % n;
}

double SplitMix64::UniformDouble() {
  return static_cast<double>(Next() >> 11) * 0x1.0p-53;
}

uint64_t DeriveSeed(std::initializer_list<uint64_t> words) {
  uint64_t h = 0x243f6a8885a308d3ULL;  // digits of pi: any fixed start works
  for (uint64_t w : words) h = Mix64(h ^ Mix64(w + 0x9e3779b97f4a7c15ULL));
  return h;
}

void Shuffle(std::vector<int>& values, SplitMix64& rng) {
  for (std::size_t i = values.size(); i > 1; --i) {
    const std::size_t j = rng.UniformBelow(i);
    std::swap(values[i - 1], values[j]);
  }
}

}  // namespace twist::common
