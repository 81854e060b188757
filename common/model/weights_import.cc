#include "common/model/weights_import.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/base/files.h"
#include "common/base/sha256.h"
#include "common/base/status_macros.h"
#include "common/model/hf_gpt2.h"
#include "common/model/model_io.h"
#include "nlohmann/json.hpp"

namespace twist::common {
namespace {

absl::Status Bad(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(
      absl::StrCat("init_from: ", path, " ", what));
}

std::string Shape(const at::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]");
}

std::string Shape(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// The layer index of "h.N.rest" (after the prefix), or -1.
int LayerOf(absl::string_view name) {
  if (!absl::ConsumePrefix(&name, "h.")) return -1;
  const size_t dot = name.find('.');
  int layer = -1;
  if (dot == absl::string_view::npos ||
      !absl::SimpleAtoi(name.substr(0, dot), &layer)) {
    return -1;
  }
  return layer;
}

// n_head and the activation from the hub's config.json beside the file.
absl::Status ReadHubConfig(WeightsFile* file) {
  const std::filesystem::path config =
      std::filesystem::path(file->path).parent_path() / "config.json";
  std::error_code error;
  if (!std::filesystem::exists(config, error)) return absl::OkStatus();
  absl::StatusOr<std::string> text = ReadFile(config.string());
  if (!text.ok()) return Bad(file->path, text.status().ToString());
  const nlohmann::json json = nlohmann::json::parse(*text, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    return Bad(file->path,
               absl::StrCat("has a config.json beside it (", config.string(),
                            ") that is not a JSON object"));
  }
  if (auto it = json.find("n_head"); it != json.end() && it->is_number()) {
    file->n_head = it->get<int>();
  }
  if (auto it = json.find("activation_function");
      it != json.end() && it->is_string()) {
    const std::string name = it->get<std::string>();
    if (name == "gelu_new" || name == "gelu_pytorch_tanh" ||
        name == "gelu_fast") {
      file->activation = Activation::kGeluTanh;
    } else if (name == "gelu") {
      file->activation = Activation::kGelu;
    } else {
      return Bad(file->path,
                 absl::StrCat("has activation_function \"", name, "\" in ",
                              config.string(),
                              ": only gelu and gelu_new (tanh) are supported"));
    }
  }
  return absl::OkStatus();
}

// n_head and the activation from this project's metadata.
absl::Status ReadTwistMetadata(WeightsFile* file) {
  if (auto it = file->metadata.find("twist.n_head");
      it != file->metadata.end()) {
    std::set<int> heads;
    for (absl::string_view piece : absl::StrSplit(it->second, ',')) {
      int h = 0;
      if (absl::SimpleAtoi(piece, &h)) heads.insert(h);
    }
    if (heads.size() == 1) file->n_head = *heads.begin();
  }
  if (auto it = file->metadata.find("twist.activation");
      it != file->metadata.end()) {
    absl::StatusOr<Activation> activation = ParseActivation(it->second);
    if (!activation.ok()) {
      return Bad(file->path, activation.status().ToString());
    }
    file->activation = *activation;
  }
  return absl::OkStatus();
}

}  // namespace

const char* WeightNamesName(WeightNames names) {
  return names == WeightNames::kHuggingFace ? "Hugging Face GPT-2" : "nanoGPT";
}

absl::StatusOr<WeightsFile> ReadWeightsFile(const std::string& path) {
  WeightsFile file;
  file.path = path;
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    return Bad(path, absl::StrCat("does not exist on the coordinator's host ",
                                  HostName(),
                                  ": give a safetensors file on that machine"));
  }
  absl::StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) return Bad(path, bytes.status().ToString());
  file.sha256 = Sha256Hex(*bytes);
  absl::StatusOr<SafetensorsContents> contents = DecodeSafetensors(*bytes);
  bytes->clear();
  if (!contents.ok()) {
    return Bad(path, absl::StrCat("is not a readable safetensors file: ",
                                  contents.status().message()));
  }
  file.tensors = std::move(contents->tensors);
  file.metadata = std::move(contents->metadata);

  // The naming: nanoGPT's c_attn is (3C, C); Hugging Face's is (C, 3C), with
  // or without the "transformer." prefix.
  const at::Tensor* wte = file.tensors.Find("transformer.wte.weight");
  if (wte != nullptr) {
    file.prefix = "transformer.";
    const at::Tensor* c_attn =
        file.tensors.Find("transformer.h.0.attn.c_attn.weight");
    const bool conv1d = c_attn != nullptr && c_attn->dim() == 2 &&
                        c_attn->size(1) == 3 * wte->size(-1) &&
                        c_attn->size(0) != c_attn->size(1);
    file.names = conv1d ? WeightNames::kHuggingFace : WeightNames::kNanoGpt;
  } else if ((wte = file.tensors.Find("wte.weight")) != nullptr) {
    file.names = WeightNames::kHuggingFace;
  } else {
    return Bad(path,
               "has neither transformer.wte.weight (nanoGPT's names, as "
               "`twistctl export` writes) nor wte.weight (Hugging Face "
               "GPT-2's): it is not a GPT-2-style model");
  }
  if (wte->dim() != 2) {
    return Bad(path, absl::StrCat("has an embedding of shape ", Shape(*wte),
                                  "; expected [vocabulary, width]"));
  }
  file.vocab_size = static_cast<int>(wte->size(0));
  file.n_embd = static_cast<int>(wte->size(1));
  const at::Tensor* wpe = file.tensors.Find(file.prefix + "wpe.weight");
  if (wpe == nullptr || wpe->dim() != 2) {
    return Bad(path, absl::StrCat("lacks ", file.prefix,
                                  "wpe.weight, the position embedding"));
  }
  file.block_size = static_cast<int>(wpe->size(0));
  for (const auto& [name, tensor] : file.tensors) {
    absl::string_view rest = name;
    if (absl::ConsumePrefix(&rest, file.prefix)) {
      file.n_layer = std::max(file.n_layer, LayerOf(rest) + 1);
    }
  }
  if (file.names == WeightNames::kHuggingFace) {
    file.activation = Activation::kGeluTanh;  // GPT-2's, unless told
    TWIST_RETURN_IF_ERROR(ReadHubConfig(&file));
  }
  TWIST_RETURN_IF_ERROR(ReadTwistMetadata(&file));
  return file;
}

absl::StatusOr<NamedTensors> ImportWeights(const WeightsFile& file,
                                           const ModelConfig& config) {
  const bool hf = file.names == WeightNames::kHuggingFace;
  // The file's name of each parameter.
  auto file_name = [&](const std::string& name) {
    return hf ? file.prefix + HuggingFaceName(name) : name;
  };
  NamedTensors out;
  std::set<std::string> used;
  for (const ParameterShape& p : ParameterShapes(config)) {
    const std::string name = file_name(p.name);
    const at::Tensor* t = file.tensors.Find(name);
    std::vector<int64_t> want = p.shape;
    if (hf && IsConv1DWeight(p.name)) std::swap(want[0], want[1]);
    if (t == nullptr) {
      return Bad(file.path,
                 absl::StrCat("lacks tensor '", name, "' (", Shape(want),
                              "), which the job's model (",
                              config.DebugString(), ") needs"));
    }
    if (t->sizes().vec() != want) {
      return Bad(file.path,
                 absl::StrCat("has tensor '", name, "' of shape ", Shape(*t),
                              " but the job's model needs ", Shape(want), " (",
                              config.DebugString(), ")"));
    }
    used.insert(name);
    at::Tensor value = t->to(torch::kCPU, torch::kFloat);
    if (hf && IsConv1DWeight(p.name)) value = value.t().contiguous();
    out.Set(p.name, value);
  }
  for (const auto& [name, tensor] : file.tensors) {
    if (used.count(name) != 0) continue;
    absl::string_view rest = name;
    absl::ConsumePrefix(&rest, file.prefix);
    if (hf && IsHuggingFaceMaskBuffer(std::string(rest))) continue;
    if (!hf && absl::EndsWith(name, ".attn.bias")) continue;  // nanoGPT's mask
    if (name == "lm_head.weight" || name == file.prefix + "lm_head.weight") {
      const at::Tensor& wte = *out.Find("transformer.wte.weight");
      if (tensor.sizes() != wte.sizes() ||
          !tensor.to(torch::kCPU, torch::kFloat).equal(wte)) {
        return Bad(file.path,
                   absl::StrCat("has an lm_head.weight that differs from the "
                                "token embedding; this model ties them"));
      }
      continue;
    }
    return Bad(file.path,
               absl::StrCat("has tensor '", name, "' (", Shape(tensor),
                            ") that the job's model (", config.DebugString(),
                            ") does not have; its names are ",
                            WeightNamesName(file.names), "'s"));
  }
  return out;
}

}  // namespace twist::common
