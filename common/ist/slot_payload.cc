#include "common/ist/slot_payload.h"

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/ist/optimizer_state.h"
#include "common/model/model_io.h"
#include "common/training/adamw.h"

namespace twist::common {
namespace {

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

std::string FlushName(const std::string& parameter) {
  return "flush/" + parameter;
}

// `layout`'s tensors looked up in `parameters` (kParameter) or
// `optimizer_state` (the rest), in the layout's order.
absl::StatusOr<NamedTensors> Compose(const std::vector<PayloadTensor>& layout,
                                     const NamedTensors& parameters,
                                     const NamedTensors& optimizer_state,
                                     const char* direction) {
  NamedTensors out;
  for (const PayloadTensor& t : layout) {
    const at::Tensor* found = t.part == PayloadPart::kParameter ||
                                      t.part == PayloadPart::kFlush
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
                         at::ScalarType wire, bool with_optimizer_state,
                         UpdateForm form)
    : full_(full),
      units_(std::move(units)),
      with_optimizer_state_(with_optimizer_state),
      form_(std::move(form)) {
  LayOut(wire);
  for (auto* layout : {&assignment_, &update_}) {
    for (PayloadTensor& t : *layout) {
      if (t.values_shape.empty()) t.values_shape = t.shape;
    }
  }
  if (compressed()) LayOutCompressedUpdate(wire);
}

void SlotPayload::LayOutCompressedUpdate(at::ScalarType wire) {
  for (PayloadTensor& t : update_) {
    if (t.part != PayloadPart::kParameter) continue;
    int64_t numel = 1;
    for (int64_t d : t.values_shape) numel *= d;
    t.shape = {EncodedBytes(form_.encoding, numel)};
    t.dtype = at::kByte;
  }
  for (const ParameterShape& p :
       ParameterShapes(SubnetConfig(full_, form_.leaving))) {
    std::optional<SliceRule> rule = *SliceRuleFor(full_, form_.leaving, p.name);
    if (!rule || rule->index.empty()) continue;
    update_.push_back({FlushName(p.name), p.name, PayloadPart::kFlush, p.shape,
                       wire, p.shape});
  }
}

void SlotPayload::LayOut(at::ScalarType wire) {
  const ModelConfig& full = full_;
  const SubnetUnits& units = units_;
  const std::vector<ParameterShape> params =
      ParameterShapes(SubnetConfig(full, units));
  for (const ParameterShape& p : params) {
    assignment_.push_back(
        {p.name, p.name, PayloadPart::kParameter, p.shape, wire});
  }
  update_ = assignment_;
  if (!with_optimizer_state_) return;
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

absl::StatusOr<EncodedUpdate> SlotPayload::EncodeUpdate(
    const NamedTensors& values) const {
  EncodedUpdate out;
  for (const PayloadTensor& t : update_) {
    if (t.part == PayloadPart::kParameter) {
      const at::Tensor* x = values.Find(t.parameter);  // float32, values_shape
      if (x == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("the update's values lack '", t.parameter, "'"));
      }
      const at::Tensor code = common::EncodeUpdate(*x, form_.encoding);
      TWIST_ASSIGN_OR_RETURN(
          const at::Tensor sent,
          common::DecodeUpdate(code, x->sizes(), form_.encoding));
      out.tensors.Set(t.name, code);
      out.left_behind.Set(t.parameter, *x - sent);
    } else if (t.part == PayloadPart::kFlush) {
      at::Tensor& left = *out.left_behind.Find(t.parameter);
      TWIST_ASSIGN_OR_RETURN(
          const at::Tensor flush,
          CarryAlongUnits(full_, units_, form_.leaving, t.parameter, left));
      const at::Tensor sent = flush.to(t.dtype);
      TWIST_ASSIGN_OR_RETURN(
          const at::Tensor flushed,
          CarryAlongUnits(full_, form_.leaving, units_, t.parameter,
                          sent.to(at::kFloat)));
      // Zero where it leaves, but for the wire type's rounding (bfloat16),
      // which leaves with the unit.
      left = left - flushed;
      out.tensors.Set(t.name, sent);
    }
  }
  return out;
}

absl::StatusOr<NamedTensors> SlotPayload::DecodeUpdate(
    const NamedTensors& update) const {
  NamedTensors out;
  for (const PayloadTensor& t : update_) {
    const at::Tensor* got = update.Find(t.name);
    if (got == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("the update lacks '", t.name, "'"));
    }
    if (t.part == PayloadPart::kParameter) {
      absl::StatusOr<at::Tensor> values =
          common::DecodeUpdate(*got, t.values_shape, form_.encoding);
      if (!values.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor '", t.name, "' does not decode: ",
            values.status().message()));
      }
      out.Set(t.parameter, *values);
    } else if (t.part == PayloadPart::kFlush) {
      TWIST_ASSIGN_OR_RETURN(
          const at::Tensor flushed,
          CarryAlongUnits(full_, form_.leaving, units_, t.parameter,
                          got->to(at::kFloat)));
      out.Find(t.parameter)->add_(flushed);
    } else {
      out.Set(t.name, *got);
    }
  }
  return out;
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
