#include "common/model/hf_gpt2.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/files.h"
#include "common/base/status_macros.h"
#include "common/model/model_io.h"
#include "nlohmann/json.hpp"

namespace twist::common {

std::string HuggingFaceName(const std::string& name) {
  constexpr absl::string_view kPrefix = "transformer.";
  if (absl::StartsWith(name, kPrefix)) return name.substr(kPrefix.size());
  return name;
}

bool IsConv1DWeight(const std::string& name) {
  return absl::EndsWith(name, ".attn.c_attn.weight") ||
         absl::EndsWith(name, ".attn.c_proj.weight") ||
         absl::EndsWith(name, ".mlp.c_fc.weight") ||
         absl::EndsWith(name, ".mlp.c_proj.weight");
}

bool IsHuggingFaceMaskBuffer(const std::string& name) {
  return absl::EndsWith(name, ".attn.bias") ||
         absl::EndsWith(name, ".attn.masked_bias");
}

NamedTensors ToHuggingFace(const NamedTensors& parameters) {
  NamedTensors out;
  for (const auto& [name, tensor] : parameters) {
    if (name == "lm_head.weight") continue;  // tied to wte
    out.Set(HuggingFaceName(name),
            IsConv1DWeight(name) ? tensor.t().contiguous() : tensor);
  }
  return out;
}

absl::StatusOr<std::string> HuggingFaceConfigJson(const ModelConfig& config) {
  for (int l = 0; l < config.n_layer; ++l) {
    if (config.n_head[l] != config.n_head[0] ||
        config.ffn_width[l] != config.ffn_width[0]) {
      return absl::FailedPreconditionError(absl::StrCat(
          "layer ", l, " has ", config.n_head[l], " heads and ",
          config.ffn_width[l], " FFN columns but layer 0 has ",
          config.n_head[0], " and ", config.ffn_width[0],
          ": GPT-2's configuration gives every layer the same size; export "
          "with nanoGPT's names instead"));
    }
  }
  const int n_head = config.n_layer > 0 ? config.n_head[0] : 0;
  if (n_head == 0 || n_head * config.head_dim != config.n_embd) {
    return absl::FailedPreconditionError(absl::StrCat(
        n_head, " heads of width ", config.head_dim, " do not fill the width ",
        config.n_embd,
        ": GPT-2's configuration needs n_head * head width == n_embd; export "
        "with nanoGPT's names instead"));
  }
  nlohmann::json json = {
      {"architectures", {"GPT2LMHeadModel"}},
      {"model_type", "gpt2"},
      {"vocab_size", config.vocab_size},
      {"n_positions", config.block_size},
      {"n_ctx", config.block_size},
      {"n_embd", config.n_embd},
      {"n_layer", config.n_layer},
      {"n_head", n_head},
      {"n_inner", config.ffn_width[0]},
      {"activation_function",
       config.activation == Activation::kGeluTanh ? "gelu_new" : "gelu"},
      {"layer_norm_epsilon", 1e-5},
      {"resid_pdrop", 0.0},
      {"embd_pdrop", 0.0},
      {"attn_pdrop", 0.0},
      {"tie_word_embeddings", true},
      {"torch_dtype", "float32"},
  };
  return json.dump(2) + "\n";
}

absl::Status WriteHuggingFaceModel(const std::string& folder,
                                   const NamedTensors& parameters,
                                   const Metadata& metadata) {
  TWIST_ASSIGN_OR_RETURN(ModelConfig config, ConfigFromMetadata(metadata));
  TWIST_ASSIGN_OR_RETURN(std::string json, HuggingFaceConfigJson(config));
  std::error_code error;
  std::filesystem::create_directories(folder, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot create folder ", folder, ": ", error.message()));
  }
  TWIST_RETURN_IF_ERROR(WriteSafetensors(folder + "/model.safetensors",
                                         ToHuggingFace(parameters), metadata));
  return WriteFileAtomically(folder + "/config.json", json);
}

}  // namespace twist::common
