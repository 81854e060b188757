#include "common/ist/optimizer_state.h"

#include <ATen/ATen.h>

#include <optional>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/ist/merge.h"
#include "common/model/model_io.h"
#include "common/training/adamw.h"

namespace twist::common {

std::vector<int64_t> StepDims(const ModelConfig& full,
                              const SubnetUnits& units) {
  std::vector<int64_t> dims;
  for (const auto& p : ParameterShapes(SubnetConfig(full, units))) {
    absl::StatusOr<std::optional<SliceRule>> rule =
        SliceRuleFor(full, units, p.name);
    dims.push_back(rule.ok() && rule->has_value() ? (*rule)->dim : -1);
  }
  return dims;
}

absl::StatusOr<NamedTensors> CarryState(const ModelConfig& full,
                                        const SubnetUnits& from,
                                        const SubnetUnits& to,
                                        NamedTensors state) {
  NamedTensors out;
  for (const auto& p : ParameterShapes(SubnetConfig(full, to))) {
    at::Tensor* m = state.Find(ExpAvgName(p.name));
    at::Tensor* v = state.Find(ExpAvgSqName(p.name));
    at::Tensor* steps = state.Find(StepsName(p.name));
    if (m == nullptr || v == nullptr || steps == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("optimizer state lacks parameter '", p.name, "'"));
    }
    TWIST_ASSIGN_OR_RETURN(std::optional<SliceRule> rule_to,
                           SliceRuleFor(full, to, p.name));
    std::vector<int64_t> places;
    if (rule_to) {
      TWIST_ASSIGN_OR_RETURN(std::optional<SliceRule> rule_from,
                             SliceRuleFor(full, from, p.name));
      if (m->size(rule_from->dim) !=
          static_cast<int64_t>(rule_from->index.size())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "optimizer state of '", p.name, "' does not fit the units held"));
      }
      places = PlacesIn(*rule_from, *rule_to);
    }
    bool in_place = rule_to && m->size(rule_to->dim) ==
                                   static_cast<int64_t>(places.size());
    for (size_t i = 0; in_place && i < places.size(); ++i) {
      in_place = places[i] == static_cast<int64_t>(i);
    }
    if (!rule_to || in_place) {  // the same positions: the tensors move
      out.Set(ExpAvgName(p.name), std::move(*m));
      out.Set(ExpAvgSqName(p.name), std::move(*v));
      out.Set(StepsName(p.name), std::move(*steps));
      continue;
    }
    out.Set(ExpAvgName(p.name), GatherOrZero(*m, rule_to->dim, places));
    out.Set(ExpAvgSqName(p.name), GatherOrZero(*v, rule_to->dim, places));
    out.Set(StepsName(p.name), GatherOrZero(*steps, 0, places));
    *m = at::Tensor();  // released as soon as carried
    *v = at::Tensor();
    *steps = at::Tensor();
  }
  return out;
}

FullOptimizerState FullOptimizerState::ZerosLike(const ModelConfig& full,
                                                 const NamedTensors& params) {
  FullOptimizerState out;
  const SubnetUnits all = AllUnits(full);
  for (const auto& [name, p] : params) {
    out.exp_avg.Set(name, at::zeros_like(p));
    out.exp_avg_sq.Set(name, at::zeros_like(p));
    std::optional<SliceRule> rule = *SliceRuleFor(full, all, name);
    out.steps.Set(name, at::zeros({rule ? p.size(rule->dim) : int64_t{1}},
                                  at::TensorOptions().dtype(at::kFloat)));
  }
  return out;
}

NamedTensors FullOptimizerState::Named() const {
  NamedTensors out;
  for (const auto& [name, t] : exp_avg) out.Set(ExpAvgName(name), t);
  for (const auto& [name, t] : exp_avg_sq) out.Set(ExpAvgSqName(name), t);
  for (const auto& [name, t] : steps) out.Set(StepsName(name), t);
  return out;
}

absl::StatusOr<FullOptimizerState> FullOptimizerState::FromNamed(
    const ModelConfig& full, const NamedTensors& params,
    const NamedTensors& named) {
  FullOptimizerState out = ZerosLike(full, params);
  for (auto* part : {&out.exp_avg, &out.exp_avg_sq, &out.steps}) {
    const bool steps = part == &out.steps;
    for (const auto& [name, t] : *part) {
      const std::string key = part == &out.exp_avg ? ExpAvgName(name)
                              : steps              ? StepsName(name)
                                                   : ExpAvgSqName(name);
      const at::Tensor* saved = named.Find(key);
      if (saved == nullptr || saved->sizes() != t.sizes()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "optimizer state '", key, "' is ",
            saved == nullptr ? "missing" : "misshapen", " in the checkpoint"));
      }
      t.copy_(*saved);
    }
  }
  return out;
}

absl::StatusOr<std::vector<NamedTensors>> FullOptimizerState::Slice(
    const ModelConfig& full, const std::vector<SubnetUnits>& slots,
    at::ScalarType wire, TensorPool* pool) const {
  TWIST_ASSIGN_OR_RETURN(std::vector<NamedTensors> m,
                         ExtractSubnets(full, exp_avg, slots, wire, pool));
  TWIST_ASSIGN_OR_RETURN(std::vector<NamedTensors> v,
                         ExtractSubnets(full, exp_avg_sq, slots, wire, pool));
  std::vector<NamedTensors> out(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    const NamedTensors slot_steps = SliceSteps(full, slots[i], steps);
    for (const auto& [name, t] : m[i]) {
      out[i].Set(ExpAvgName(name), t);
      out[i].Set(ExpAvgSqName(name), *v[i].Find(name));
      out[i].Set(StepsName(name), *slot_steps.Find(StepsName(name)));
    }
  }
  return out;
}

absl::Status FullOptimizerState::Merge(
    const ModelConfig& full, const std::vector<OptimizerStateUpdate>& updates,
    int local_steps, TensorPool* scratch) {
  // Each update's moments by parameter name, as MergeUpdates takes them.
  std::vector<NamedTensors> firsts(updates.size()), seconds(updates.size());
  std::vector<SliceUpdate> first_updates, second_updates;
  std::vector<const SubnetUnits*> trained;
  for (size_t i = 0; i < updates.size(); ++i) {
    const OptimizerStateUpdate& u = updates[i];
    for (const auto& p : ParameterShapes(SubnetConfig(full, *u.units))) {
      const at::Tensor* m = u.state->Find(ExpAvgName(p.name));
      const at::Tensor* v = u.state->Find(ExpAvgSqName(p.name));
      if (m == nullptr || v == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            "an update lacks the optimizer state of '", p.name, "'"));
      }
      firsts[i].Set(p.name, *m);
      seconds[i].Set(p.name, *v);
    }
    first_updates.push_back({u.units, &firsts[i], u.is_delta});
    second_updates.push_back({u.units, &seconds[i], u.is_delta});
    trained.push_back(u.units);
  }
  NamedTensors unused;
  TWIST_RETURN_IF_ERROR(MergeUpdates(full, exp_avg, first_updates,
                                     OuterStep(), &unused, scratch));
  TWIST_RETURN_IF_ERROR(MergeUpdates(full, exp_avg_sq, second_updates,
                                     OuterStep(), &unused, scratch));
  // Rounding (bfloat16 deltas) must not make a second moment negative.
  for (const auto& [name, t] : exp_avg_sq) t.clamp_min_(0);
  AdvanceSteps(full, trained, local_steps, &steps);
  return absl::OkStatus();
}

NamedTensors SliceSteps(const ModelConfig& full, const SubnetUnits& units,
                        const NamedTensors& steps) {
  NamedTensors out;
  for (const auto& p : ParameterShapes(SubnetConfig(full, units))) {
    const at::Tensor& s = *steps.Find(p.name);
    std::optional<SliceRule> rule = *SliceRuleFor(full, units, p.name);
    out.Set(StepsName(p.name),
            rule ? s.index_select(
                       0, at::tensor(rule->index,
                                     at::TensorOptions().dtype(at::kLong)))
                 : s.clone());
  }
  return out;
}

void AdvanceSteps(const ModelConfig& full,
                  const std::vector<const SubnetUnits*>& trained,
                  int local_steps, NamedTensors* steps) {
  if (trained.empty()) return;
  for (const auto& [name, s] : *steps) {
    std::vector<bool> held(s.numel(), false);
    for (const SubnetUnits* units : trained) {
      std::optional<SliceRule> rule = *SliceRuleFor(full, *units, name);
      if (!rule) {
        held.assign(held.size(), true);
        break;
      }
      for (int64_t a : rule->index) held[a] = true;
    }
    float* counts = s.data_ptr<float>();
    for (size_t a = 0; a < held.size(); ++a) {
      if (held[a]) counts[a] += static_cast<float>(local_steps);
    }
  }
}

}  // namespace twist::common
