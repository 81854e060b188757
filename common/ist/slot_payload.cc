#include "common/ist/slot_payload.h"

#include "absl/strings/str_cat.h"
#include "common/ist/optimizer_state.h"
#include "common/model/model_io.h"
#include "common/training/adamw.h"

namespace twist::common {
namespace {

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

// `layout`'s tensors looked up in `parameters` (kParameter) or
// `optimizer_state` (the rest), in the layout's order.
absl::StatusOr<NamedTensors> Compose(const std::vector<PayloadTensor>& layout,
                                     const NamedTensors& parameters,
                                     const NamedTensors& optimizer_state,
                                     const char* direction) {
  NamedTensors out;
  for (const PayloadTensor& t : layout) {
    const at::Tensor* found = t.part == PayloadPart::kParameter
                                  ? parameters.Find(t.name)
                                  : optimizer_state.Find(t.name);
    if (found == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("the ", direction, " lacks '", t.name, "'"));
    }
    out.Set(t.name, *found);
  }
  return out;
}

}  // namespace

SlotPayload::SlotPayload(const ModelConfig& full, SubnetUnits units,
                         at::ScalarType wire, bool with_optimizer_state)
    : with_optimizer_state_(with_optimizer_state) {
  const std::vector<ParameterShape> params =
      ParameterShapes(SubnetConfig(full, units));
  for (const ParameterShape& p : params) {
    assignment_.push_back(
        {p.name, p.name, PayloadPart::kParameter, p.shape, wire});
  }
  update_ = assignment_;
  if (!with_optimizer_state) return;
  const std::vector<int64_t> dims = StepDims(full, units);
  for (size_t i = 0; i < params.size(); ++i) {
    const ParameterShape& p = params[i];
    const PayloadTensor first{ExpAvgName(p.name), p.name,
                              PayloadPart::kFirstMoment, p.shape, wire};
    const PayloadTensor second{ExpAvgSqName(p.name), p.name,
                               PayloadPart::kSecondMoment, p.shape, wire};
    const int64_t positions = dims[i] < 0 ? 1 : p.shape[dims[i]];
    assignment_.push_back(first);
    assignment_.push_back(second);
    assignment_.push_back({StepsName(p.name), p.name, PayloadPart::kSteps,
                           {positions}, at::kFloat});
    update_.push_back(first);
    update_.push_back(second);
  }
}

absl::StatusOr<NamedTensors> SlotPayload::ComposeAssignment(
    const NamedTensors& parameters, const NamedTensors& optimizer_state) const {
  return Compose(assignment_, parameters, optimizer_state, "assignment");
}

absl::StatusOr<NamedTensors> SlotPayload::ComposeUpdate(
    const NamedTensors& parameters, const NamedTensors& optimizer_state) const {
  return Compose(update_, parameters, optimizer_state, "update");
}

PayloadParts SlotPayload::Split(const NamedTensors& payload) {
  const std::string first = ExpAvgName(""), second = ExpAvgSqName(""),
                    steps = StepsName("");
  PayloadParts out;
  for (const auto& [name, t] : payload) {
    const bool state = StartsWith(name, first) || StartsWith(name, second) ||
                       StartsWith(name, steps);
    (state ? out.optimizer_state : out.parameters).Set(name, t);
  }
  return out;
}

}  // namespace twist::common
