#include "tests/test_models.h"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

#include "gtest/gtest.h"

namespace twist::testing {

common::ModelConfig SmallConfig() {
  return common::ModelConfig::Full(/*n_layer=*/4, /*n_head=*/4, /*n_embd=*/64,
                                   /*block_size=*/32, /*vocab_size=*/256);
}

common::Gpt MakeModel(const common::ModelConfig& config, uint64_t seed,
                      torch::Dtype dtype) {
  common::Gpt model(config);
  model->to(dtype);
  model->InitWeights(seed);
  return model;
}

common::SubnetUnits RandomUnits(const common::ModelConfig& config,
                                common::SplitMix64& rng) {
  common::SubnetUnits units;
  units.layers.resize(config.n_layer);
  for (int l = 0; l < config.n_layer; ++l) {
    auto pick = [&](int k, std::vector<int>* out) {
      std::vector<int> ids(k);
      for (int i = 0; i < k; ++i) ids[i] = i;
      common::Shuffle(ids, rng);
      ids.resize(rng.UniformBelow(k + 1));
      std::sort(ids.begin(), ids.end());
      *out = ids;
    };
    pick(config.n_head[l], &units.layers[l].heads);
    pick(config.ffn_width[l], &units.layers[l].ffn_columns);
  }
  return units;
}

torch::Tensor RandomTokens(int64_t batch, int64_t time, int vocab,
                           uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randint(vocab, {batch, time}, gen, torch::dtype(torch::kLong));
}

std::string MakeTempDir() {
  char pattern[] = "/tmp/twist_test_XXXXXX";
  if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
  return pattern;
}

common::NamedTensors Clone(const common::NamedTensors& tensors) {
  common::NamedTensors out;
  for (const auto& [name, t] : tensors) out.Set(name, t.detach().clone());
  return out;
}

absl::StatusOr<common::NamedTensors> ExtractOne(
    const common::ModelConfig& config, const common::NamedTensors& params,
    const common::SubnetUnits& units) {
  auto sliced = common::ExtractSubnets(
      config, params, {units},
      params.empty() ? at::kFloat : params[0].tensor.scalar_type());
  if (!sliced.ok()) return sliced.status();
  return (*sliced)[0];
}

common::NamedTensors Extract(const common::ModelConfig& config,
                             const common::NamedTensors& params,
                             const common::SubnetUnits& units) {
  auto sliced = ExtractOne(config, params, units);
  EXPECT_TRUE(sliced.ok()) << sliced.status();
  return sliced.ok() ? *sliced : common::NamedTensors();
}

}  // namespace twist::testing
