// Training and evaluation batches drawn from a token file. Batches are drawn
// with the project's own generator (common/base/rng.h), never <random>'s
// distributions, so a (job seed, round, slot, step) selects the same token
// windows on every platform and standard library.
//
// Shapes: B batch, T context (time). Batches are (B, T) row-major.
#ifndef TWIST_COMMON_DATA_BATCHES_H_
#define TWIST_COMMON_DATA_BATCHES_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "common/data/token_file.h"

namespace twist::common {

// The seed of the batch a worker draws at local step `step` of `round` in
// `slot` of a job. Carries a fixed tag so it never coincides with a partition
// seed built from the same numbers.
uint64_t BatchSeed(uint64_t job_seed, int64_t round, int64_t slot,
                   int64_t step);

// A random training batch, nanoGPT style: `batch` windows whose start
// positions are uniform in [0, size - context - 1] (drawn in order with
// SplitMix64(seed).UniformBelow(size - context)); inputs are the `context`
// tokens from each start and targets the same window shifted by one token.
// Fills `inputs` and `targets` with batch * context ids each, (B, T)
// row-major (previous contents are replaced). InvalidArgument for a
// non-positive batch or context; FailedPrecondition when the file holds fewer
// than context + 1 tokens.
absl::Status SampleBatch(const TokenFile& tokens, int batch, int context,
                         uint64_t seed, std::vector<int64_t>* inputs,
                         std::vector<int64_t>* targets);

// Number of non-overlapping evaluation windows of `context` tokens (plus one
// target token) that `tokens` holds: slots start at 0, context, 2*context, ...
// up to the last start that leaves room for the targets. 0 when the file holds
// fewer than context + 1 tokens.
int64_t EvalWindowCount(const TokenFile& tokens, int context);

// Evaluation batch `index` (0, 1, 2, ...): fixed windows, so every evaluation
// of a job reads the same data. Window j of batch `index` is global window
// w = index * batch + j, which reads slot (w * g) mod M of the M =
// EvalWindowCount slots, where g is the integer nearest M / golden ratio that
// is coprime to M. Hence:
//   - the first M windows read every slot exactly once (full coverage) and
//     later windows repeat that order;
//   - any prefix of the order is spread evenly over the whole file (a golden
//     ratio sequence), so an evaluation of a few batches samples the start,
//     middle and end of the validation text alike rather than its first
//     pages only.
// Fills (B, T) inputs and targets as SampleBatch does. InvalidArgument for a
// non-positive batch or context or a negative index; FailedPrecondition when
// the file holds fewer than context + 1 tokens.
absl::Status EvalBatch(const TokenFile& tokens, int batch, int context,
                       int index, std::vector<int64_t>* inputs,
                       std::vector<int64_t>* targets);

}  // namespace twist::common

#endif  // TWIST_COMMON_DATA_BATCHES_H_
