#include "common/ist/subnet.h"

#include <algorithm>
#include <unordered_map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/ist/slice_kernels.h"
#include "common/model/model_io.h"
#include "common/model/threads.h"

namespace twist::common {
namespace {

absl::Status CheckIds(const std::vector<int>& ids, int limit,
                      const std::string& what) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= limit) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " id ", ids[i], " is outside [0, ", limit, ")"));
    }
    if (i > 0 && ids[i] <= ids[i - 1]) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " ids must be strictly ascending; got ",
                       ids[i - 1], " then ", ids[i]));
    }
  }
  return absl::OkStatus();
}

// Splits "transformer.h.<l>.<rest>" into l and rest; false for other names.
bool ParseLayerName(const std::string& name, int* layer, std::string* rest) {
  static constexpr absl::string_view kPrefix = "transformer.h.";
  if (!absl::StartsWith(name, kPrefix)) return false;
  const size_t dot = name.find('.', kPrefix.size());
  if (dot == std::string::npos) return false;
  if (!absl::SimpleAtoi(
          absl::string_view(name).substr(kPrefix.size(), dot - kPrefix.size()),
          layer)) {
    return false;
  }
  *rest = name.substr(dot + 1);
  return true;
}

}  // namespace

SubnetUnits AllUnits(const ModelConfig& full) {
  SubnetUnits units;
  units.layers.resize(full.n_layer);
  for (int l = 0; l < full.n_layer; ++l) {
    for (int h = 0; h < full.n_head[l]; ++h) units.layers[l].heads.push_back(h);
    for (int j = 0; j < full.ffn_width[l]; ++j) {
      units.layers[l].ffn_columns.push_back(j);
    }
  }
  return units;
}

absl::Status ValidateUnits(const ModelConfig& full, const SubnetUnits& units) {
  if (static_cast<int>(units.layers.size()) != full.n_layer) {
    return absl::InvalidArgumentError(
        absl::StrCat("subnetwork lists ", units.layers.size(),
                     " layers but the model has ", full.n_layer));
  }
  for (int l = 0; l < full.n_layer; ++l) {
    TWIST_RETURN_IF_ERROR(CheckIds(units.layers[l].heads, full.n_head[l],
                                   absl::StrCat("layer ", l, " head")));
    TWIST_RETURN_IF_ERROR(CheckIds(units.layers[l].ffn_columns,
                                   full.ffn_width[l],
                                   absl::StrCat("layer ", l, " FFN column")));
  }
  return absl::OkStatus();
}

ModelConfig SubnetConfig(const ModelConfig& full, const SubnetUnits& units) {
  ModelConfig sub = full;
  for (int l = 0; l < full.n_layer; ++l) {
    sub.n_head[l] = static_cast<int>(units.layers[l].heads.size());
    sub.ffn_width[l] = static_cast<int>(units.layers[l].ffn_columns.size());
  }
  return sub;
}

PartialSumScales ScalesFor(const ModelConfig& full, const SubnetUnits& units,
                           PartialSumScaling scaling) {
  PartialSumScales scales;
  scales.attn.assign(full.n_layer, 1.0);
  scales.mlp.assign(full.n_layer, 1.0);
  if (scaling == PartialSumScaling::kNone) return scales;
  for (int l = 0; l < full.n_layer; ++l) {
    const size_t m_heads = units.layers[l].heads.size();
    const size_t m_cols = units.layers[l].ffn_columns.size();
    if (m_heads > 0) {
      scales.attn[l] = static_cast<double>(full.n_head[l]) / m_heads;
    }
    if (m_cols > 0) {
      scales.mlp[l] = static_cast<double>(full.ffn_width[l]) / m_cols;
    }
  }
  return scales;
}

UnitMasks MasksFor(const ModelConfig& full, const SubnetUnits& units,
                   const torch::TensorOptions& options) {
  UnitMasks masks;
  for (int l = 0; l < full.n_layer; ++l) {
    auto heads = torch::zeros({full.n_head[l]}, options);
    for (int h : units.layers[l].heads) heads[h] = 1.0;
    auto cols = torch::zeros({full.ffn_width[l]}, options);
    for (int j : units.layers[l].ffn_columns) cols[j] = 1.0;
    masks.heads.push_back(heads);
    masks.ffn.push_back(cols);
  }
  return masks;
}

absl::StatusOr<std::optional<SliceRule>> SliceRuleFor(const ModelConfig& full,
                                                      const SubnetUnits& units,
                                                      const std::string& name) {
  int layer = -1;
  std::string rest;
  if (!ParseLayerName(name, &layer, &rest)) {
    if (name == "transformer.wte.weight" || name == "transformer.wpe.weight" ||
        name == "transformer.ln_f.weight" || name == "transformer.ln_f.bias") {
      return std::optional<SliceRule>();
    }
    return absl::InvalidArgumentError(
        absl::StrCat("'", name, "' is not a parameter of the model"));
  }
  if (layer < 0 || layer >= full.n_layer) {
    return absl::InvalidArgumentError(absl::StrCat("'", name, "' names layer ",
                                                   layer, " but the model has ",
                                                   full.n_layer, " layers"));
  }
  const LayerUnits& lu = units.layers[layer];
  const int64_t H = full.n_head[layer], D = full.head_dim;
  SliceRule rule;
  if (rest == "attn.c_attn.weight" || rest == "attn.c_attn.bias") {
    rule.dim = 0;
    rule.index.reserve(3 * lu.heads.size() * D);
    for (int64_t block = 0; block < 3; ++block) {  // q, k, v
      for (int h : lu.heads) {
        const int64_t first = block * H * D + h * D;
        for (int64_t d = 0; d < D; ++d) rule.index.push_back(first + d);
      }
    }
    return std::optional<SliceRule>(std::move(rule));
  }
  if (rest == "attn.c_proj.weight") {
    rule.dim = 1;
    rule.index.reserve(lu.heads.size() * D);
    for (int h : lu.heads) {
      for (int64_t d = 0; d < D; ++d) rule.index.push_back(h * D + d);
    }
    return std::optional<SliceRule>(std::move(rule));
  }
  if (rest == "mlp.c_fc.weight" || rest == "mlp.c_fc.bias" ||
      rest == "mlp.c_proj.weight") {
    rule.dim = rest == "mlp.c_proj.weight" ? 1 : 0;
    rule.index.assign(lu.ffn_columns.begin(), lu.ffn_columns.end());
    return std::optional<SliceRule>(std::move(rule));
  }
  if (rest == "ln_1.weight" || rest == "ln_1.bias" || rest == "ln_2.weight" ||
      rest == "ln_2.bias" || rest == "attn.c_proj.bias" ||
      rest == "mlp.c_proj.bias") {
    return std::optional<SliceRule>();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("'", name, "' is not a parameter of the model"));
}

absl::StatusOr<std::vector<NamedTensors>> ExtractSubnets(
    const ModelConfig& full, const NamedTensors& full_params,
    const std::vector<SubnetUnits>& slots, at::ScalarType dtype,
    TensorPool* pool) {
  auto allocate = [&](at::IntArrayRef shape) {
    const auto options = at::TensorOptions().dtype(dtype);
    return pool != nullptr ? pool->Acquire(shape, options)
                           : at::empty(shape, options);
  };
  for (const auto& units : slots)
    TWIST_RETURN_IF_ERROR(ValidateUnits(full, units));
  TWIST_RETURN_IF_ERROR(CheckParameterShapes(full, full_params));
  for (const auto& [name, tensor] : full_params) {
    if (!KernelSupports(tensor, dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot slice tensor '", name, "' of dtype ",
          c10::toString(tensor.scalar_type()), " on ", tensor.device().str(),
          " into ", c10::toString(dtype),
          ": slicing runs on contiguous CPU float32 or float64 models"));
    }
  }
  torch::NoGradGuard no_grad;
  // Every slice is allocated first, in the model's order (the pool is
  // shared); then the tensors are filled on the threads, each tensor's
  // slices by one thread.
  std::vector<NamedTensors> out(slots.size());
  struct Fill {
    const at::Tensor* tensor;
    std::vector<SliceRule> rules;  // empty: replicated, a whole copy each
    std::vector<at::Tensor> slices;
  };
  std::vector<Fill> fills;
  std::vector<int64_t> costs;
  for (const auto& [name, tensor] : full_params) {
    Fill fill{&tensor, {}, {}};
    for (const auto& units : slots) {
      TWIST_ASSIGN_OR_RETURN(std::optional<SliceRule> rule,
                             SliceRuleFor(full, units, name));
      if (!rule) break;
      fill.rules.push_back(std::move(*rule));
    }
    if (fill.rules.size() != slots.size()) fill.rules.clear();
    int64_t elements = 0;
    for (size_t k = 0; k < slots.size(); ++k) {
      std::vector<int64_t> shape = tensor.sizes().vec();
      if (!fill.rules.empty()) {
        shape[fill.rules[k].dim] =
            static_cast<int64_t>(fill.rules[k].index.size());
      }
      fill.slices.push_back(allocate(shape));
      out[k].Set(name, fill.slices.back());
      elements += fill.slices.back().numel();
    }
    fills.push_back(std::move(fill));
    costs.push_back(elements);
  }
  ForEachBalanced(costs, [&](size_t f) {
    const Fill& fill = fills[f];
    if (fill.rules.empty()) {
      for (const at::Tensor& slice : fill.slices) slice.copy_(*fill.tensor);
      return;
    }
    std::vector<const std::vector<int64_t>*> indices;
    for (const auto& rule : fill.rules) indices.push_back(&rule.index);
    GatherSlices(*fill.tensor, fill.rules[0].dim, indices, fill.slices);
  });
  return out;
}

absl::StatusOr<Gpt> BuildSubnetModel(const ModelConfig& full,
                                     const SubnetUnits& units,
                                     const NamedTensors& subnet_params,
                                     PartialSumScaling scaling) {
  TWIST_RETURN_IF_ERROR(ValidateUnits(full, units));
  Gpt model(SubnetConfig(full, units));
  if (const at::Tensor* wte = subnet_params.Find("transformer.wte.weight")) {
    model->to(wte->device(), wte->scalar_type());
  }
  TWIST_RETURN_IF_ERROR(LoadParameters(*model, subnet_params));
  model->SetPartialSumScales(ScalesFor(full, units, scaling));
  return model;
}

std::vector<int64_t> PlacesIn(const SliceRule& from, const SliceRule& to) {
  std::unordered_map<int64_t, int64_t> place;
  for (size_t k = 0; k < from.index.size(); ++k) place[from.index[k]] = k;
  std::vector<int64_t> out;
  out.reserve(to.index.size());
  for (int64_t a : to.index) {
    auto it = place.find(a);
    out.push_back(it == place.end() ? -1 : it->second);
  }
  return out;
}

at::Tensor IndexTensor(const std::vector<int64_t>& index,
                       const at::Device& device) {
  return at::tensor(index, at::TensorOptions().dtype(at::kLong)).to(device);
}

at::Tensor GatherOrZero(const at::Tensor& t, int64_t dim,
                        const std::vector<int64_t>& places) {
  // A zero slice appended at the end stands for "not held before".
  std::vector<int64_t> zero_shape = t.sizes().vec();
  zero_shape[dim] = 1;
  const at::Tensor padded =
      at::cat({t, at::zeros(zero_shape, t.options())}, dim);
  std::vector<int64_t> index(places);
  for (int64_t& i : index) {
    if (i < 0) i = t.size(dim);
  }
  return padded.index_select(dim, IndexTensor(index, t.device())).contiguous();
}

absl::StatusOr<at::Tensor> CarryAlongUnits(const ModelConfig& full,
                                           const SubnetUnits& from,
                                           const SubnetUnits& to,
                                           const std::string& name,
                                           const at::Tensor& t) {
  TWIST_ASSIGN_OR_RETURN(std::optional<SliceRule> rule_to,
                         SliceRuleFor(full, to, name));
  if (!rule_to) return t;
  TWIST_ASSIGN_OR_RETURN(std::optional<SliceRule> rule_from,
                         SliceRuleFor(full, from, name));
  if (t.dim() <= rule_from->dim ||
      t.size(rule_from->dim) != static_cast<int64_t>(rule_from->index.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor of '", name, "' does not fit the units it is said to hold"));
  }
  return GatherOrZero(t, rule_to->dim, PlacesIn(*rule_from, *rule_to));
}


SubnetUnits UnitsNotIn(const SubnetUnits& units, const SubnetUnits& other) {
  SubnetUnits out;
  out.layers.resize(units.layers.size());
  auto minus = [](const std::vector<int>& a, const std::vector<int>* b) {
    std::vector<int> kept;
    for (int u : a) {
      if (b == nullptr || std::find(b->begin(), b->end(), u) == b->end()) {
        kept.push_back(u);
      }
    }
    return kept;
  };
  for (size_t l = 0; l < units.layers.size(); ++l) {
    const LayerUnits* o = l < other.layers.size() ? &other.layers[l] : nullptr;
    out.layers[l].heads = minus(units.layers[l].heads, o ? &o->heads : nullptr);
    out.layers[l].ffn_columns =
        minus(units.layers[l].ffn_columns, o ? &o->ffn_columns : nullptr);
  }
  return out;
}

}  // namespace twist::common
