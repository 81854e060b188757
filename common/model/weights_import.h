// A model's starting weights from a file (a job's init_from): a safetensors
// file named either as this project's exports are (nanoGPT's names) or as
// Hugging Face's GPT-2 (common/model/hf_gpt2.h). Reading tells what the file
// says of the model's shape; importing checks every tensor against the job's
// model and returns them in this project's names and layouts.
//
// Every error is InvalidArgument and starts with "init_from: " and the file's
// path, so that a refused submit says which field is wrong.
#ifndef TWIST_COMMON_MODEL_WEIGHTS_IMPORT_H_
#define TWIST_COMMON_MODEL_WEIGHTS_IMPORT_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/model/model_config.h"
#include "common/model/named_tensors.h"
#include "common/model/safetensors.h"

namespace twist::common {

enum class WeightNames { kNanoGpt, kHuggingFace };
const char* WeightNamesName(
    WeightNames names);  // "nanoGPT", "Hugging Face GPT-2"

struct WeightsFile {
  std::string path;
  std::string sha256;  // of the file's bytes
  WeightNames names = WeightNames::kNanoGpt;
  // Hugging Face files from GPT2LMHeadModel carry a "transformer." prefix;
  // the hub's GPT2Model files do not.
  std::string prefix;
  NamedTensors tensors;  // as in the file
  Metadata metadata;

  // The shape the tensors give.
  int n_layer = 0;
  int n_embd = 0;
  int block_size = 0;
  int vocab_size = 0;
  // What the weights cannot tell, when something beside them does: this
  // project's metadata ("twist.n_head", "twist.activation") or the hub's
  // config.json next to the file ("n_head", "activation_function"). 0 /
  // nullopt: unknown. Hugging Face files without either are GPT-2's tanh
  // GELU.
  int n_head = 0;
  std::optional<Activation> activation;
};

// Reads `path`. Errors (InvalidArgument, "init_from: PATH ..."): the file is
// missing or unreadable, is not safetensors, or holds neither naming scheme's
// embedding (transformer.wte.weight or wte.weight).
absl::StatusOr<WeightsFile> ReadWeightsFile(const std::string& path);

// The file's tensors as this project's parameters of a model of `config`
// (float32, on the CPU): Conv1D weights transposed, the mask buffers skipped,
// lm_head.weight dropped when it equals the tied embedding. Errors
// (InvalidArgument, "init_from: PATH ..."), named in the file's own naming:
// a tensor the model lacks, a parameter the file lacks, a shape that differs
// (both shapes given), an lm_head.weight that is not the embedding.
absl::StatusOr<NamedTensors> ImportWeights(const WeightsFile& file,
                                           const ModelConfig& config);

}  // namespace twist::common

#endif  // TWIST_COMMON_MODEL_WEIGHTS_IMPORT_H_
