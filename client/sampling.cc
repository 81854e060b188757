#include "client/sampling.h"

#include "absl/strings/str_cat.h"

namespace twist::client {

absl::StatusOr<std::string> SampleText(common::GptImpl& model,
                                       const std::string& prompt,
                                       const SamplingOptions& options) {
  if (!(options.temperature > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "temperature must be positive, got ", options.temperature));
  }
  if (model.config().vocab_size > 256) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the model has ", model.config().vocab_size,
        " tokens; generate decodes byte-level models (256 tokens) only"));
  }
  torch::NoGradGuard no_grad;
  model.eval();
  const torch::Device device = model.transformer->wte->weight.device();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  std::vector<int64_t> tokens;
  for (unsigned char c : prompt.empty() ? std::string("\n") : prompt)
    tokens.push_back(c);
  std::string out;
  const int64_t context = model.config().block_size;
  for (int i = 0; i < options.max_new_tokens; ++i) {
    const int64_t start =
        std::max<int64_t>(0, static_cast<int64_t>(tokens.size()) - context);
    auto idx = torch::tensor(
                   std::vector<int64_t>(tokens.begin() + start, tokens.end()),
                   torch::kLong)
                   .view({1, -1})
                   .to(device);
    auto logits = model.forward(idx).select(1, -1).squeeze(0).to(torch::kCPU,
                                                                 torch::kFloat);
    logits = logits / options.temperature;  // (V)
    if (options.top_k > 0 && options.top_k < logits.size(0)) {
      auto kth = std::get<0>(logits.topk(options.top_k)).min();
      logits = logits.masked_fill(logits < kth,
                                  -std::numeric_limits<float>::infinity());
    }
    auto probs = torch::softmax(logits, /*dim=*/0);
    const int64_t next =
        torch::multinomial(probs, 1, /*replacement=*/false, gen)
            .item<int64_t>();
    tokens.push_back(next);
    out.push_back(static_cast<char>(next));
  }
  return out;
}

}  // namespace twist::client
