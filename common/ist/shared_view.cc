#include "common/ist/shared_view.h"

#include <algorithm>
#include <iterator>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/model/model_io.h"

namespace twist::common {
namespace {

// Drops from each list the ids that a different list also holds.
void DropShared(std::vector<std::vector<int>*>& lists) {
  std::set<std::vector<int>> distinct;
  for (const auto* l : lists) {
    if (!l->empty()) distinct.insert(*l);
  }
  if (distinct.size() < 2) return;
  std::map<int, int> holders;
  for (const auto& l : distinct) {
    for (int u : l) ++holders[u];
  }
  for (auto* l : lists) {
    std::vector<int> kept;
    for (int u : *l) {
      if (holders[u] == 1) kept.push_back(u);
    }
    *l = std::move(kept);
  }
}

// The ids both ascending lists hold.
std::vector<int> Common(const std::vector<int>& a, const std::vector<int>& b) {
  std::vector<int> out;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(),
                        std::back_inserter(out));
  return out;
}

}  // namespace

SharedView::SharedView(const ModelConfig& full, at::ScalarType wire,
                       UpdateEncoding encoding)
    : full_(full), wire_(wire), encoding_(encoding) {}

void SharedView::Delivered(const std::string& worker_id) {
  auto it = held_.find(worker_id);
  if (it != held_.end() && it->second.deal == deal_) {
    it->second.delivered = true;
  }
}

std::vector<AssignmentForm> SharedView::Forms(
    const std::vector<std::string>& worker_ids,
    const std::vector<SubnetUnits>& units,
    std::vector<int32_t>* rounds) const {
  const size_t n = units.size();
  std::vector<AssignmentForm> forms(n);
  rounds->assign(n, 0);
  for (size_t i = 0; i < n; ++i) {
    forms[i].encoding = encoding_;
    auto it = held_.find(worker_ids[i]);
    if (it == held_.end() || !it->second.delivered ||
        it->second.deal != deal_ || view_.empty()) {
      continue;
    }
    forms[i].resident = true;
    (*rounds)[i] = it->second.round;
    forms[i].resident_units.layers.resize(full_.n_layer);
    for (int l = 0; l < full_.n_layer; ++l) {
      const LayerUnits& now = units[i].layers[l];
      const LayerUnits& then = it->second.units.layers[l];
      forms[i].resident_units.layers[l] = {Common(now.heads, then.heads),
                                           Common(now.ffn_columns,
                                                  then.ffn_columns)};
    }
  }
  for (int l = 0; l < full_.n_layer; ++l) {
    std::vector<std::vector<int>*> heads, columns;
    for (auto& f : forms) {
      if (!f.resident) continue;
      heads.push_back(&f.resident_units.layers[l].heads);
      columns.push_back(&f.resident_units.layers[l].ffn_columns);
    }
    DropShared(heads);
    DropShared(columns);
  }
  return forms;
}

absl::StatusOr<ViewDeal> SharedView::Deal(
    int32_t round, const NamedTensors& params,
    const std::vector<std::string>& worker_ids,
    const std::vector<SubnetUnits>& units) {
  if (worker_ids.size() != units.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(worker_ids.size(), " workers for ", units.size(),
                     " slots"));
  }
  for (const SubnetUnits& u : units) {
    TWIST_RETURN_IF_ERROR(ValidateUnits(full_, u));
  }
  at::NoGradGuard no_grad;
  ViewDeal out;
  if (units.empty()) return out;
  out.forms = Forms(worker_ids, units, &out.resident_rounds);
  const size_t n = units.size();
  std::vector<SubnetUnits> sent(n);
  for (size_t i = 0; i < n; ++i) {
    sent[i] = out.forms[i].resident
                  ? UnitsNotIn(units[i], out.forms[i].resident_units)
                  : units[i];
  }
  std::vector<NamedTensors> by_name(n);
  for (const ParameterShape& p : ParameterShapes(full_)) {
    const at::Tensor* found = params.Find(p.name);
    if (found == nullptr || found->sizes().vec() != p.shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the model lacks '", p.name, "' of the configured shape"));
    }
    const at::Tensor model = found->detach();  // float32, full shape
    if (view_.Find(p.name) == nullptr) {
      // A copy even in the model's own type: the merge writes the model.
      view_.Set(p.name, model.to(wire_, /*non_blocking=*/false, /*copy=*/true));
    }
    at::Tensor& view = *view_.Find(p.name);  // wire type, full shape
    TWIST_ASSIGN_OR_RETURN(const std::optional<SliceRule> partitioned,
                           SliceRuleFor(full_, units[0], p.name));
    if (!partitioned) {
      bool any_resident = false;
      for (const auto& f : out.forms) any_resident |= f.resident;
      at::Tensor code, weights;
      if (any_resident) {
        code = EncodeUpdate(model - view.to(at::kFloat), encoding_);
        TWIST_ASSIGN_OR_RETURN(const at::Tensor change,
                               DecodeUpdate(code, view.sizes(), encoding_));
        view.copy_(AdvancedView(view, change));
      } else {
        view.copy_(model);
      }
      for (size_t i = 0; i < n; ++i) {
        if (out.forms[i].resident) {
          by_name[i].Set(ChangeName(p.name), code);
        } else {
          if (!weights.defined()) weights = view.clone();
          by_name[i].Set(p.name, weights);
        }
      }
      continue;
    }
    const int64_t dim = partitioned->dim;
    // The changes, one code per distinct resident set.
    std::vector<bool> resident(view.size(dim), false);
    std::map<std::vector<int64_t>, at::Tensor> codes;
    for (size_t i = 0; i < n; ++i) {
      if (!out.forms[i].resident) continue;
      TWIST_ASSIGN_OR_RETURN(
          const std::optional<SliceRule> rule,
          SliceRuleFor(full_, out.forms[i].resident_units, p.name));
      if (rule->index.empty()) continue;
      auto [it, fresh] = codes.emplace(rule->index, at::Tensor());
      if (fresh) {
        const at::Tensor index = IndexTensor(rule->index);
        const at::Tensor held = view.index_select(dim, index);
        it->second = EncodeUpdate(
            model.index_select(dim, index) - held.to(at::kFloat), encoding_);
        TWIST_ASSIGN_OR_RETURN(
            const at::Tensor change,
            DecodeUpdate(it->second, held.sizes(), encoding_));
        view.index_copy_(dim, index, AdvancedView(held, change));
        for (int64_t k : rule->index) resident[k] = true;
      }
      by_name[i].Set(ChangeName(p.name), it->second);
    }
    // The weights of the units each slot does not hold, the true model's
    // where no worker holds them.
    for (size_t i = 0; i < n; ++i) {
      TWIST_ASSIGN_OR_RETURN(const std::optional<SliceRule> rule,
                             SliceRuleFor(full_, sent[i], p.name));
      std::vector<int64_t> refresh;
      for (int64_t k : rule->index) {
        if (!resident[k]) {
          refresh.push_back(k);
          resident[k] = true;  // refreshed once
        }
      }
      if (!refresh.empty()) {
        const at::Tensor index = IndexTensor(refresh);
        view.index_copy_(dim, index, model.index_select(dim, index).to(wire_));
      }
      by_name[i].Set(p.name, view.index_select(dim, IndexTensor(rule->index)));
    }
  }
  ++deal_;
  for (size_t i = 0; i < n; ++i) {
    const SlotPayload payload(full_, units[i], wire_,
                              /*with_optimizer_state=*/false, {},
                              out.forms[i]);
    NamedTensors assignment;
    for (const PayloadTensor& t : payload.assignment()) {
      const at::Tensor* tensor = by_name[i].Find(t.name);
      if (tensor == nullptr) {
        return absl::InternalError(
            absl::StrCat("the shared view made no '", t.name, "'"));
      }
      assignment.Set(t.name, *tensor);
    }
    out.assignments.push_back(std::move(assignment));
    held_[worker_ids[i]] = Held{deal_, round, units[i], false};
  }
  return out;
}

}  // namespace twist::common
