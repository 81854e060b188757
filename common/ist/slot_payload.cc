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

// `form` with one entry per layer of `full` in its resident units.
AssignmentForm Normalized(AssignmentForm form, const ModelConfig& full) {
  if (!form.resident || form.encoding.codec == UpdateCodec::kNone) {
    return AssignmentForm{form.encoding, false, {}};
  }
  form.resident_units.layers.resize(full.n_layer);
  return form;
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
                         UpdateForm form, AssignmentForm assignment_form)
    : full_(full),
      units_(std::move(units)),
      with_optimizer_state_(with_optimizer_state),
      form_(std::move(form)),
      wire_(wire),
      assignment_form_(Normalized(std::move(assignment_form), full)) {
  LayOut(wire);
  if (resident()) LayOutResidentAssignment(wire);
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

SubnetUnits SlotPayload::SentUnits() const {
  if (!resident()) return units_;
  return UnitsNotIn(units_, assignment_form_.resident_units);
}

void SlotPayload::LayOutResidentAssignment(at::ScalarType wire) {
  const SubnetUnits sent = SentUnits();
  std::vector<PayloadTensor> laid;
  for (const ParameterShape& p : ParameterShapes(SubnetConfig(full_, units_))) {
    const std::optional<SliceRule> rule = *SliceRuleFor(full_, units_, p.name);
    std::vector<int64_t> changed = p.shape, whole = p.shape;
    bool change = true, weights = false;
    if (rule) {
      const int64_t resident =
          (*SliceRuleFor(full_, assignment_form_.resident_units, p.name))
              ->index.size();
      changed[rule->dim] = resident;
      whole[rule->dim] = rule->index.size() - resident;
      change = resident > 0;
      weights = whole[rule->dim] > 0 || !change;
    }
    if (change) {
      int64_t numel = 1;
      for (int64_t d : changed) numel *= d;
      laid.push_back({ChangeName(p.name), p.name, PayloadPart::kChange,
                      {EncodedBytes(assignment_form_.encoding, numel)},
                      at::kByte, changed});
    }
    if (weights) {
      laid.push_back({p.name, p.name, PayloadPart::kParameter, whole, wire,
                      whole});
    }
  }
  // The optimizer's tensors (if any) follow as they are.
  for (PayloadTensor& t : assignment_) {
    if (t.part != PayloadPart::kParameter) laid.push_back(std::move(t));
  }
  assignment_ = std::move(laid);
}

std::string ChangeName(const std::string& parameter) {
  return "change/" + parameter;
}

at::Tensor AdvancedView(const at::Tensor& view, const at::Tensor& change) {
  return (view.to(at::kFloat) + change).to(view.scalar_type());
}

absl::StatusOr<NamedTensors> SlotPayload::ReceiveView(
    const NamedTensors& assignment, const SubnetUnits& held_units,
    const NamedTensors& held, const at::Device& device) const {
  const SubnetUnits sent = SentUnits();
  // The decoded change to `prev`, which is the parameter's held values.
  auto advance = [&](const std::string& name,
                     const at::Tensor& prev) -> absl::StatusOr<at::Tensor> {
    const std::string code_name = ChangeName(name);
    const at::Tensor* code = assignment.Find(code_name);
    if (code == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("the assignment lacks '", code_name, "'"));
    }
    absl::StatusOr<at::Tensor> change = common::DecodeUpdate(
        code->to(device), prev.sizes(), assignment_form_.encoding);
    if (!change.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", code_name, "' does not decode: ",
          change.status().message()));
    }
    return AdvancedView(prev, *change);
  };
  auto find = [](const NamedTensors& in, const std::string& name,
                 const char* what) -> absl::StatusOr<at::Tensor> {
    const at::Tensor* t = in.Find(name);
    if (t == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " lacks '", name, "'"));
    }
    return *t;
  };
  NamedTensors out;
  for (const ParameterShape& p : ParameterShapes(SubnetConfig(full_, units_))) {
    if (!resident()) {
      TWIST_ASSIGN_OR_RETURN(const at::Tensor weights,
                             find(assignment, p.name, "the assignment"));
      out.Set(p.name, weights.to(device));
      continue;
    }
    TWIST_ASSIGN_OR_RETURN(const std::optional<SliceRule> rule,
                           SliceRuleFor(full_, units_, p.name));
    if (!rule) {  // replicated: the worker holds all of it
      TWIST_ASSIGN_OR_RETURN(const at::Tensor prev,
                             find(held, p.name, "the worker's view"));
      TWIST_ASSIGN_OR_RETURN(at::Tensor view, advance(p.name, prev));
      out.Set(p.name, view);
      continue;
    }
    TWIST_ASSIGN_OR_RETURN(const std::optional<SliceRule> sent_rule,
                           SliceRuleFor(full_, sent, p.name));
    TWIST_ASSIGN_OR_RETURN(
        const std::optional<SliceRule> resident_rule,
        SliceRuleFor(full_, assignment_form_.resident_units, p.name));
    at::Tensor view =
        at::empty(p.shape, at::TensorOptions().dtype(wire_).device(device));
    if (!resident_rule->index.empty()) {
      TWIST_ASSIGN_OR_RETURN(const at::Tensor held_p,
                             find(held, p.name, "the worker's view"));
      TWIST_ASSIGN_OR_RETURN(const std::optional<SliceRule> held_rule,
                             SliceRuleFor(full_, held_units, p.name));
      const std::vector<int64_t> places = PlacesIn(*held_rule, *resident_rule);
      for (size_t i = 0; i < places.size(); ++i) {
        if (places[i] < 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "the assignment changes position ", resident_rule->index[i],
              " of '", p.name, "', which the worker does not hold"));
        }
      }
      const at::Tensor prev =
          held_p.index_select(rule->dim, IndexTensor(places, held_p.device()));
      TWIST_ASSIGN_OR_RETURN(const at::Tensor advanced, advance(p.name, prev));
      view.index_copy_(rule->dim,
                       IndexTensor(PlacesIn(*rule, *resident_rule), device),
                       advanced);
    }
    if (!sent_rule->index.empty()) {
      TWIST_ASSIGN_OR_RETURN(const at::Tensor weights,
                             find(assignment, p.name, "the assignment"));
      view.index_copy_(rule->dim,
                       IndexTensor(PlacesIn(*rule, *sent_rule), device),
                       weights.to(device, wire_));
    }
    out.Set(p.name, view);
  }
  return out;
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
