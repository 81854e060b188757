#include "client/sampling.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"

namespace twist::client {

absl::StatusOr<std::vector<int>> SampleTokens(common::GptImpl& model,
                                              const std::vector<int>& prompt,
                                              const SamplingOptions& options) {
  if (!(options.temperature > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "temperature must be positive, got ", options.temperature));
  }
  if (prompt.empty()) {
    return absl::InvalidArgumentError("the prompt has no tokens");
  }
  const int used = model.config().UsedVocab();
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] < 0 || prompt[i] >= used) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt token ", prompt[i], " at position ", i,
                       " is outside the model's vocabulary of ", used));
    }
  }
  torch::NoGradGuard no_grad;
  model.eval();
  const torch::Device device = model.transformer->wte->weight.device();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  std::vector<int64_t> tokens(prompt.begin(), prompt.end());
  std::vector<int> out;
  const int64_t context = model.config().block_size;
  for (int i = 0; i < options.max_new_tokens; ++i) {
    const int64_t start =
        std::max<int64_t>(0, static_cast<int64_t>(tokens.size()) - context);
    auto idx = torch::tensor(
                   std::vector<int64_t>(tokens.begin() + start, tokens.end()),
                   torch::kLong)
                   .view({1, -1})
                   .to(device);  // (1, T)
    auto logits = model.forward(idx)
                      .select(1, -1)
                      .squeeze(0)
                      .narrow(0, 0, used)
                      .to(torch::kCPU, torch::kFloat);  // (used)
    logits = logits / options.temperature;
    if (options.top_k > 0 && options.top_k < logits.size(0)) {
      auto kth = std::get<0>(logits.topk(options.top_k)).min();
      logits = logits.masked_fill(logits < kth,
                                  -std::numeric_limits<float>::infinity());
    }
    auto probs = torch::softmax(logits, /*dim=*/0);  // (used)
    const int64_t next =
        torch::multinomial(probs, 1, /*replacement=*/false, gen)
            .item<int64_t>();
    tokens.push_back(next);
    out.push_back(static_cast<int>(next));
  }
  return out;
}

}  // namespace twist::client
