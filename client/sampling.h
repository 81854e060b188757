// Token ids from a trained model: autoregressive sampling with a temperature
// and top-k, seeded, in a sliding window of the model's context.
#ifndef TWIST_CLIENT_SAMPLING_H_
#define TWIST_CLIENT_SAMPLING_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/gpt.h"

namespace twist::client {

struct SamplingOptions {
  int max_new_tokens = 200;
  double temperature = 0.8;  // > 0; lower is more conservative
  int top_k = 40;            // 0: the whole vocabulary
  uint64_t seed = 1;
};

// The ids that continue `prompt` (not empty; ids below the model's used
// vocabulary). Padding ids (ModelConfig::vocab_used) are never drawn.
// InvalidArgument for a bad temperature, an empty prompt or an id the model
// does not know.
absl::StatusOr<std::vector<int>> SampleTokens(common::GptImpl& model,
                                              const std::vector<int>& prompt,
                                              const SamplingOptions& options);

}  // namespace twist::client

#endif  // TWIST_CLIENT_SAMPLING_H_
