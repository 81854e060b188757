#include "common/data/batches.h"

#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/base/files.h"
#include "common/base/rng.h"
#include "common/base/status_macros.h"

namespace twist::common {
namespace {

// Mixed into every batch seed so that (job seed, round, slot, step) never
// yields the seed of a partition keyed by (job seed, round, layer, kind).
// ASCII "TWISTBAT".
constexpr uint64_t kBatchSeedTag = 0x5457495354424154ULL;

// Validates the shared arguments of SampleBatch and EvalBatch.
absl::Status CheckBatchArgs(const TokenFile& tokens, int batch, int context,
                            const char* caller) {
  if (batch <= 0 || context <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(caller, ": batch (", batch,
                                                   ") and context (", context,
                                                   ") must both be positive"));
  }
  if (tokens.size() < static_cast<int64_t>(context) + 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        caller, ": token file ", tokens.path(), " on host ", HostName(),
        " holds ", tokens.size(),
        " tokens, fewer than context + 1 = ", static_cast<int64_t>(context) + 1,
        ": use a shorter context or a larger dataset (a larger val_fraction "
        "for the validation set)"));
  }
  return absl::OkStatus();
}

// Copies the window starting at `start` into row `row` of the (B, T) outputs.
void CopyWindow(const TokenFile& tokens, int64_t start, int row, int context,
                std::vector<int64_t>* inputs, std::vector<int64_t>* targets) {
  const int64_t base = static_cast<int64_t>(row) * context;
  for (int t = 0; t < context; ++t) {
    (*inputs)[base + t] = tokens.at(start + t);
    (*targets)[base + t] = tokens.at(start + t + 1);
  }
}

void ResizeBatch(int batch, int context, std::vector<int64_t>* inputs,
                 std::vector<int64_t>* targets) {
  const size_t n = static_cast<size_t>(batch) * static_cast<size_t>(context);
  inputs->assign(n, 0);
  targets->assign(n, 0);
}

// (a * b) mod m for a, b < m without overflow: the product of two slot
// numbers exceeds 64 bits once a file has more than 2^32 windows.
uint64_t MulMod(uint64_t a, uint64_t b, uint64_t m) {
  if (m <= (uint64_t{1} << 32)) return a * b % m;
  uint64_t result = 0;
  while (b > 0) {
    // Additions modulo m written so that they never wrap.
    if (b & 1) result = result >= m - a ? result - (m - a) : result + a;
    a = a >= m - a ? a - (m - a) : a + a;
    b >>= 1;
  }
  return result;
}

}  // namespace

uint64_t BatchSeed(uint64_t job_seed, int64_t round, int64_t slot,
                   int64_t step) {
  return DeriveSeed({kBatchSeedTag, job_seed, static_cast<uint64_t>(round),
                     static_cast<uint64_t>(slot), static_cast<uint64_t>(step)});
}

absl::Status SampleBatch(const TokenFile& tokens, int batch, int context,
                         uint64_t seed, std::vector<int64_t>* inputs,
                         std::vector<int64_t>* targets) {
  TWIST_RETURN_IF_ERROR(CheckBatchArgs(tokens, batch, context, "SampleBatch"));
  ResizeBatch(batch, context, inputs, targets);
  SplitMix64 rng(seed);
  // size - context starts leave room for the last target.
  const uint64_t starts = static_cast<uint64_t>(tokens.size() - context);
  for (int b = 0; b < batch; ++b) {
    const int64_t start = static_cast<int64_t>(rng.UniformBelow(starts));
    CopyWindow(tokens, start, b, context, inputs, targets);
  }
  return absl::OkStatus();
}

int64_t EvalWindowCount(const TokenFile& tokens, int context) {
  if (context <= 0 || tokens.size() < static_cast<int64_t>(context) + 1) {
    return 0;
  }
  // Slot s starts at s * context; the last start is at most size - context - 1.
  return (tokens.size() - context - 1) / context + 1;
}

absl::Status EvalBatch(const TokenFile& tokens, int batch, int context,
                       int index, std::vector<int64_t>* inputs,
                       std::vector<int64_t>* targets) {
  TWIST_RETURN_IF_ERROR(CheckBatchArgs(tokens, batch, context, "EvalBatch"));
  if (index < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "EvalBatch: batch index ", index, " must not be negative"));
  }
  ResizeBatch(batch, context, inputs, targets);
  const uint64_t slots =
      static_cast<uint64_t>(EvalWindowCount(tokens, context));
  // The step nearest slots / golden ratio visits the slots in a low-
  // discrepancy order; coprime to `slots`, it visits each exactly once per
  // cycle. Computed in double, which is exact enough and identical on every
  // IEEE-754 platform for any file size that fits on a disk.
  uint64_t step = static_cast<uint64_t>(
      std::llround(static_cast<double>(slots) * 0.6180339887498949));
  if (step == 0) step = 1;
  while (std::gcd(step, slots) != 1) ++step;
  for (int j = 0; j < batch; ++j) {
    const uint64_t window =
        (static_cast<uint64_t>(index) * static_cast<uint64_t>(batch) + j) %
        slots;
    const uint64_t slot = MulMod(window, step, slots);
    CopyWindow(tokens, static_cast<int64_t>(slot) * context, j, context, inputs,
               targets);
  }
  return absl::OkStatus();
}

}  // namespace twist::common
