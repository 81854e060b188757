// Moving a model's weights in and out: the expected parameter list of a
// configuration, copying tensors into a model, and model files (safetensors
// with nanoGPT's names; the configuration in the file's metadata).
#ifndef TWIST_COMMON_MODEL_MODEL_IO_H_
#define TWIST_COMMON_MODEL_MODEL_IO_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/gpt.h"
#include "common/model/model_config.h"
#include "common/model/named_tensors.h"
#include "common/model/safetensors.h"

namespace twist::common {

struct ParameterShape {
  std::string name;
  std::vector<int64_t> shape;
};

// Every parameter of a model with this configuration, in the order of
// GptImpl::named_parameters(), the tied embedding once.
std::vector<ParameterShape> ParameterShapes(const ModelConfig& config);

// InvalidArgument unless `tensors` holds exactly the parameters of `config`
// with their shapes (names the first missing, unexpected or misshapen one).
absl::Status CheckParameterShapes(const ModelConfig& config,
                                  const NamedTensors& tensors);

// Copies `tensors` into the model's parameters (converting device and dtype).
// An "lm_head.weight" entry is accepted when it equals the tied embedding.
absl::Status LoadParameters(GptImpl& model, const NamedTensors& tensors);

// Multiplies each sublayer's output projection by its partial-sum scale and
// resets the scales to 1: the same function, in a form other frameworks run.
void FoldPartialSumScales(GptImpl& model);

// The configuration as safetensors metadata ("twist.n_embd", ...) and back.
Metadata ConfigToMetadata(const ModelConfig& config);
absl::StatusOr<ModelConfig> ConfigFromMetadata(const Metadata& metadata);

// The tensors and metadata SaveModel writes: the parameters (detached, on
// their device) with partial-sum scales folded in, "lm_head.weight" in
// nanoGPT's layout, and the configuration plus `extra_metadata`.
absl::StatusOr<NamedTensors> ExportTensors(GptImpl& model,
                                           const Metadata& extra_metadata,
                                           Metadata* metadata);

// Writes the model's parameters to `path` with its configuration in the
// metadata. In nanoGPT's layout, "lm_head.weight" is written as a copy of the
// tied embedding so nanoGPT's GPT.load_state_dict() takes the file as it is.
// Partial-sum scales other than 1 are folded into the written weights.
absl::Status SaveModel(const std::string& path, GptImpl& model,
                       const Metadata& extra_metadata = {});

// Reads a model written by SaveModel onto `device`; the file's metadata
// ("twist.tokenizer", ...) into *metadata when given.
absl::StatusOr<Gpt> LoadModel(const std::string& path,
                              const torch::Device& device = torch::kCPU,
                              Metadata* metadata = nullptr);

}  // namespace twist::common

#endif  // TWIST_COMMON_MODEL_MODEL_IO_H_
