// Text from a trained byte-level model: autoregressive sampling with a
// temperature and top-k, seeded, in a sliding window of the model's context.
#ifndef TWIST_CLIENT_SAMPLING_H_
#define TWIST_CLIENT_SAMPLING_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/model/gpt.h"

namespace twist::client {

struct SamplingOptions {
  int max_new_tokens = 200;
  double temperature = 0.8;  // > 0; lower is more conservative
  int top_k = 40;            // 0: the whole vocabulary
  uint64_t seed = 1;
};

// Continues `prompt` (bytes as tokens; an empty prompt starts from a
// newline). InvalidArgument for a bad temperature or a vocabulary that is not
// byte-level (tokens above 255 have no text).
absl::StatusOr<std::string> SampleText(common::GptImpl& model,
                                       const std::string& prompt,
                                       const SamplingOptions& options);

}  // namespace twist::client

#endif  // TWIST_CLIENT_SAMPLING_H_
