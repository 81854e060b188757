// Hugging Face GPT-2's parameter names and layouts, against this project's
// (nanoGPT's): what `twistctl export --format=hf` writes and what init_from
// reads.
//
//   nanoGPT (here)                          Hugging Face GPT-2
//   transformer.wte.weight    (V, C)        wte.weight        (V, C)
//   transformer.h.N.attn.c_attn.weight      h.N.attn.c_attn.weight
//                             (3C, C)                         (C, 3C)  Conv1D
//   ... attn.c_proj, mlp.c_fc, mlp.c_proj: the same, transposed (Conv1D
//   stores (in, out)); biases, layer norms and wpe keep their shapes.
//   lm_head.weight: tied to wte in both; not written here.
//   h.N.attn.bias, h.N.attn.masked_bias: the hub's attention-mask buffers,
//   not parameters; skipped when read.
#ifndef TWIST_COMMON_MODEL_HF_GPT2_H_
#define TWIST_COMMON_MODEL_HF_GPT2_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/model/model_config.h"
#include "common/model/named_tensors.h"
#include "common/model/safetensors.h"

namespace twist::common {

// The Hugging Face name of a parameter named as here ("transformer.h.0.ln_1.
// weight" -> "h.0.ln_1.weight").
std::string HuggingFaceName(const std::string& name);

// Whether a parameter (either naming) is a Conv1D weight, stored transposed
// by Hugging Face.
bool IsConv1DWeight(const std::string& name);

// Whether a Hugging Face tensor name is one of the attention-mask buffers the
// hub's files carry (h.N.attn.bias, h.N.attn.masked_bias).
bool IsHuggingFaceMaskBuffer(const std::string& name);

// A model's parameters (named as here, the tied embedding once) under
// Hugging Face names and layouts, contiguous.
NamedTensors ToHuggingFace(const NamedTensors& parameters);

// config.json for transformers' GPT2LMHeadModel. FailedPrecondition for a
// model that GPT-2's configuration cannot describe: heads of another width
// than n_embd / n_head, or layers of different sizes (a subnetwork).
absl::StatusOr<std::string> HuggingFaceConfigJson(const ModelConfig& config);

// Writes `folder`/model.safetensors (Hugging Face names, `metadata` kept) and
// `folder`/config.json, creating the folder: what
// GPT2LMHeadModel.from_pretrained(folder) loads. `parameters` are named as
// here; the configuration comes from `metadata` (ConfigFromMetadata). Errors
// from HuggingFaceConfigJson, and file-system errors naming the path.
absl::Status WriteHuggingFaceModel(const std::string& folder,
                                   const NamedTensors& parameters,
                                   const Metadata& metadata);

}  // namespace twist::common

#endif  // TWIST_COMMON_MODEL_HF_GPT2_H_
