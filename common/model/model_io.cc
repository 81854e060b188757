#include "common/model/model_io.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"

namespace twist::common {
namespace {
constexpr char kLmHead[] = "lm_head.weight";
constexpr char kWte[] = "transformer.wte.weight";

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("(", absl::StrJoin(shape, ", "), ")");
}
}  // namespace

std::vector<ParameterShape> ParameterShapes(const ModelConfig& config) {
  const int64_t C = config.n_embd, D = config.head_dim;
  std::vector<ParameterShape> out;
  out.push_back({kWte, {config.vocab_size, C}});
  out.push_back({"transformer.wpe.weight", {config.block_size, C}});
  for (int l = 0; l < config.n_layer; ++l) {
    const std::string p = absl::StrCat("transformer.h.", l, ".");
    const int64_t HD = config.n_head[l] * D, F = config.ffn_width[l];
    out.push_back({p + "ln_1.weight", {C}});
    out.push_back({p + "ln_1.bias", {C}});
    out.push_back({p + "attn.c_attn.weight", {3 * HD, C}});
    out.push_back({p + "attn.c_attn.bias", {3 * HD}});
    out.push_back({p + "attn.c_proj.weight", {C, HD}});
    out.push_back({p + "attn.c_proj.bias", {C}});
    out.push_back({p + "ln_2.weight", {C}});
    out.push_back({p + "ln_2.bias", {C}});
    out.push_back({p + "mlp.c_fc.weight", {F, C}});
    out.push_back({p + "mlp.c_fc.bias", {F}});
    out.push_back({p + "mlp.c_proj.weight", {C, F}});
    out.push_back({p + "mlp.c_proj.bias", {C}});
  }
  out.push_back({"transformer.ln_f.weight", {C}});
  out.push_back({"transformer.ln_f.bias", {C}});
  return out;
}

absl::Status CheckParameterShapes(const ModelConfig& config,
                                  const NamedTensors& tensors) {
  const auto expected = ParameterShapes(config);
  for (const auto& p : expected) {
    const at::Tensor* t = tensors.Find(p.name);
    if (t == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter '", p.name, "' is missing"));
    }
    if (t->sizes().vec() != p.shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          "parameter '", p.name, "' has shape ", ShapeString(t->sizes().vec()),
          ", expected ", ShapeString(p.shape)));
    }
  }
  if (tensors.size() != expected.size()) {
    for (const auto& [name, tensor] : tensors) {
      bool known = false;
      for (const auto& p : expected) known = known || p.name == name;
      if (!known) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", name, "' is not a parameter of the model"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status LoadParameters(GptImpl& model, const NamedTensors& tensors) {
  NamedTensors params = ParameterTensors(model);
  NamedTensors without_head;
  for (const auto& [name, tensor] : tensors) {
    if (name == kLmHead) continue;
    without_head.Set(name, tensor);
  }
  TWIST_RETURN_IF_ERROR(CheckParameterShapes(model.config(), without_head));
  if (const at::Tensor* head = tensors.Find(kLmHead)) {
    const at::Tensor* wte = tensors.Find(kWte);
    if (!head->to(wte->device()).equal(*wte)) {
      return absl::InvalidArgumentError(
          "lm_head.weight differs from transformer.wte.weight, but this model "
          "ties its input and output embeddings");
    }
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, param] : params) {
    param.copy_(*without_head.Find(name));
  }
  return absl::OkStatus();
}

void FoldPartialSumScales(GptImpl& model) {
  torch::NoGradGuard no_grad;
  const PartialSumScales& scales = model.partial_sum_scales();
  for (int l = 0; l < model.config().n_layer; ++l) {
    auto& block = model.transformer->blocks[l];
    block->attn->c_proj->weight.mul_(scales.attn[l]);
    block->mlp->c_proj->weight.mul_(scales.mlp[l]);
  }
  PartialSumScales ones;
  ones.attn.assign(model.config().n_layer, 1.0);
  ones.mlp.assign(model.config().n_layer, 1.0);
  model.SetPartialSumScales(ones);
}

Metadata ConfigToMetadata(const ModelConfig& c) {
  Metadata metadata = {
      {"format", "pt"},
      {"twist.n_layer", absl::StrCat(c.n_layer)},
      {"twist.n_embd", absl::StrCat(c.n_embd)},
      {"twist.head_dim", absl::StrCat(c.head_dim)},
      {"twist.n_head", absl::StrJoin(c.n_head, ",")},
      {"twist.ffn_width", absl::StrJoin(c.ffn_width, ",")},
      {"twist.block_size", absl::StrCat(c.block_size)},
      {"twist.vocab_size", absl::StrCat(c.vocab_size)},
  };
  if (c.vocab_used > 0) {
    metadata["twist.vocab_used"] = absl::StrCat(c.vocab_used);
  }
  metadata["twist.activation"] = ActivationName(c.activation);
  return metadata;
}

absl::StatusOr<ModelConfig> ConfigFromMetadata(const Metadata& metadata) {
  auto get = [&](const std::string& key) -> absl::StatusOr<std::string> {
    auto it = metadata.find(key);
    if (it == metadata.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model file metadata lacks '", key,
                       "': it was not written by TwIST (twistctl export)"));
    }
    return it->second;
  };
  auto get_int = [&](const std::string& key, int* out) -> absl::Status {
    TWIST_ASSIGN_OR_RETURN(std::string text, get(key));
    if (!absl::SimpleAtoi(text, out)) {
      return absl::InvalidArgumentError(
          absl::StrCat("model file metadata '", key, "' is not an integer"));
    }
    return absl::OkStatus();
  };
  auto get_list = [&](const std::string& key,
                      std::vector<int>* out) -> absl::Status {
    TWIST_ASSIGN_OR_RETURN(std::string text, get(key));
    out->clear();
    if (text.empty()) return absl::OkStatus();
    for (absl::string_view piece : absl::StrSplit(text, ',')) {
      int v = 0;
      if (!absl::SimpleAtoi(piece, &v)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "model file metadata '", key, "' is not a list of integers"));
      }
      out->push_back(v);
    }
    return absl::OkStatus();
  };
  ModelConfig c;
  TWIST_RETURN_IF_ERROR(get_int("twist.n_layer", &c.n_layer));
  TWIST_RETURN_IF_ERROR(get_int("twist.n_embd", &c.n_embd));
  TWIST_RETURN_IF_ERROR(get_int("twist.head_dim", &c.head_dim));
  TWIST_RETURN_IF_ERROR(get_list("twist.n_head", &c.n_head));
  TWIST_RETURN_IF_ERROR(get_list("twist.ffn_width", &c.ffn_width));
  TWIST_RETURN_IF_ERROR(get_int("twist.block_size", &c.block_size));
  TWIST_RETURN_IF_ERROR(get_int("twist.vocab_size", &c.vocab_size));
  if (metadata.count("twist.vocab_used")) {
    TWIST_RETURN_IF_ERROR(get_int("twist.vocab_used", &c.vocab_used));
  }
  if (auto it = metadata.find("twist.activation"); it != metadata.end()) {
    absl::StatusOr<Activation> activation = ParseActivation(it->second);
    if (!activation.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model file metadata 'twist.activation': ",
                       activation.status().message()));
    }
    c.activation = *activation;
  }
  TWIST_RETURN_IF_ERROR(c.Validate());
  return c;
}

absl::StatusOr<NamedTensors> ExportTensors(GptImpl& model,
                                           const Metadata& extra_metadata,
                                           Metadata* metadata) {
  torch::NoGradGuard no_grad;
  NamedTensors tensors;
  const PartialSumScales& scales = model.partial_sum_scales();
  for (const auto& [name, param] : ParameterTensors(model)) {
    tensors.Set(name, param.detach());
  }
  for (int l = 0; l < model.config().n_layer; ++l) {
    for (auto [suffix, scale] :
         {std::pair<const char*, double>{"attn.c_proj.weight", scales.attn[l]},
          {"mlp.c_proj.weight", scales.mlp[l]}}) {
      if (scale == 1.0) continue;
      const std::string name = absl::StrCat("transformer.h.", l, ".", suffix);
      tensors.Set(name, tensors.Find(name)->mul(scale));
    }
  }
  if (model.config().IsNanoGptLayout())
    tensors.Set(kLmHead, *tensors.Find(kWte));
  *metadata = ConfigToMetadata(model.config());
  for (const auto& [k, v] : extra_metadata) (*metadata)[k] = v;
  return tensors;
}

absl::Status SaveModel(const std::string& path, GptImpl& model,
                       const Metadata& extra_metadata) {
  Metadata metadata;
  TWIST_ASSIGN_OR_RETURN(NamedTensors tensors,
                         ExportTensors(model, extra_metadata, &metadata));
  return WriteSafetensors(path, tensors, metadata);
}

absl::StatusOr<Gpt> LoadModel(const std::string& path,
                              const torch::Device& device, Metadata* metadata) {
  TWIST_ASSIGN_OR_RETURN(SafetensorsContents contents, ReadSafetensors(path));
  TWIST_ASSIGN_OR_RETURN(ModelConfig config,
                         ConfigFromMetadata(contents.metadata));
  Gpt model(config);
  model->to(device);
  absl::Status status = LoadParameters(*model, contents.tensors);
  if (!status.ok()) {
    return absl::DataLossError(
        absl::StrCat("model file ", path,
                     " does not match its metadata: ", status.message()));
  }
  if (metadata != nullptr) *metadata = std::move(contents.metadata);
  return model;
}

}  // namespace twist::common
