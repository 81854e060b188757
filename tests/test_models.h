// Small models and random subnetworks shared by the LibTorch tests.
#ifndef TWIST_TESTS_TEST_MODELS_H_
#define TWIST_TESTS_TEST_MODELS_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "common/model/gpt.h"
#include "common/model/model_config.h"
#include "common/base/rng.h"
#include "common/ist/subnet.h"

namespace twist::testing {

// The core tests' model: 4 layers, C=64, 4 heads of 16, F=256, T=32, V=256.
common::ModelConfig SmallConfig();

// A freshly initialised model of `config` in `dtype` on the CPU.
common::Gpt MakeModel(const common::ModelConfig& config, uint64_t seed,
                      torch::Dtype dtype = torch::kFloat32);

// Random units: each layer keeps a random number of heads and columns in
// [0, H] and [0, F] (so some layers may hold nothing).
common::SubnetUnits RandomUnits(const common::ModelConfig& config,
                                common::SplitMix64& rng);

// Random tokens (B, T) in [0, V).
torch::Tensor RandomTokens(int64_t batch, int64_t time, int vocab,
                           uint64_t seed);

// A deep copy.
common::NamedTensors Clone(const common::NamedTensors& tensors);

// One subnetwork's tensors sliced out of `params` (ExtractSubnets for one
// slot), in `params`' element type.
absl::StatusOr<common::NamedTensors> ExtractOne(
    const common::ModelConfig& config, const common::NamedTensors& params,
    const common::SubnetUnits& units);

// ExtractOne that fails the test on an error.
common::NamedTensors Extract(const common::ModelConfig& config,
                             const common::NamedTensors& params,
                             const common::SubnetUnits& units);

// A fresh temporary folder, removed by the caller (or left for debugging).
std::string MakeTempDir();

}  // namespace twist::testing

#endif  // TWIST_TESTS_TEST_MODELS_H_
