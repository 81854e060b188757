// What travels for one slot of a round, in both directions, and in which
// order: the one description the coordinator and the workers share.
//
//   assignment (coordinator -> worker)
//     the subnetwork's parameters, in ParameterShapes order; then, when the
//     coordinator keeps the optimizer state, per parameter its first moment,
//     its second moment and its step counts (float32, one per position along
//     the parameter's unit dimension, or one for a replicated parameter)
//   assignment to a resident worker (compressed jobs, common/ist/
//   shared_view.h): per parameter, the code of the change to what the worker
//     holds ("change/<parameter>", uint8) for the replicated parameters and
//     the resident units, then the weights of the units it does not hold
//     yet ("<parameter>", those units only), in the wire's type
//   update (worker -> coordinator)
//     the parameters again (trained values, or trained-minus-received deltas
//     in reduced-precision transport); then, with coordinator-kept state, per
//     parameter its two moments (the coordinator advances step counts itself)
//   compressed update (the job's `compression`, common/ist/update_codec.h)
//     per parameter its delta's code (uint8); then, per parameter sliced by
//     units, what the codes did not carry for the units leaving the worker
//     after this round, in the wire's type ("flush/<parameter>", only where
//     any leave). The rest of what the codes did not carry stays with the
//     worker, which adds it to its next update of the same units (error
//     feedback): no part of an update is dropped.
//
// Parameters and moments travel in the wire's element type. Optimizer tensors
// are named as AdamW names its state (common/training/adamw.h), so what a
// worker receives loads into its optimizer as it is and what it returns is
// the optimizer's own State(). Nothing here knows about gRPC.
#ifndef TWIST_COMMON_IST_SLOT_PAYLOAD_H_
#define TWIST_COMMON_IST_SLOT_PAYLOAD_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ist/subnet.h"
#include "common/ist/update_codec.h"
#include "common/model/model_config.h"
#include "common/model/named_tensors.h"

namespace twist::common {

// Which part of a slot's payload a tensor is.
enum class PayloadPart {
  kParameter,
  kFirstMoment,
  kSecondMoment,
  kSteps,
  kFlush,  // a leaving unit's leftover of a compressed update
  kChange,  // the code of the change to the resident units' weights
};

// One tensor of a slot's payload.
struct PayloadTensor {
  std::string name;       // as on the wire
  std::string parameter;  // the parameter it is, or belongs to
  PayloadPart part = PayloadPart::kParameter;
  std::vector<int64_t> shape;
  // The wire's element type, except float32 for step counts and uint8 for
  // codes.
  at::ScalarType dtype = at::kFloat;
  // The shape of the values it holds: `shape`, except for a code.
  std::vector<int64_t> values_shape;
};

// How a slot's update travels: as its tensors (kNone), or compressed, with
// the leftovers of the units `leaving` the worker after the round.
struct UpdateForm {
  UpdateEncoding encoding;
  SubnetUnits leaving;
};

// How a slot's assignment travels: whole (`resident` false), or, to a worker
// that holds the coordinator's view of its units of the last round (common/
// ist/shared_view.h), as the codes in `encoding` of the change to the
// replicated parameters and the `resident_units`, and the weights of the
// rest of its units.
struct AssignmentForm {
  UpdateEncoding encoding;
  bool resident = false;
  SubnetUnits resident_units;  // of the slot's units; one entry per layer
};

// The name of the code of the change to `parameter` in a resident
// assignment.
std::string ChangeName(const std::string& parameter);

// `view` advanced by `change` (float32): their float32 sum in view's element
// type. The one arithmetic by which the coordinator's view and a worker's
// copy of it advance.
at::Tensor AdvancedView(const at::Tensor& view, const at::Tensor& change);

// A compressed update and what its codes did not carry for the units the
// worker keeps.
struct EncodedUpdate {
  NamedTensors tensors;      // in the update's order
  NamedTensors left_behind;  // float32, by parameter, the subnetwork's shapes
};

// A payload split into what the model takes and what the optimizer takes.
struct PayloadParts {
  NamedTensors parameters;       // by parameter name
  NamedTensors optimizer_state;  // named as AdamW names its state
};

class SlotPayload {
 public:
  // The payload of the subnetwork `units` of `full`, its parameters and
  // moments in `wire` (float32 or bfloat16); `with_optimizer_state` when the
  // coordinator keeps the optimizer state.
  // `form` applies to the update, `assignment_form` to the assignment.
  SlotPayload(const ModelConfig& full, SubnetUnits units, at::ScalarType wire,
              bool with_optimizer_state, UpdateForm form = {},
              AssignmentForm assignment_form = {});

  // The assignment's tensors, in order.
  const std::vector<PayloadTensor>& assignment() const { return assignment_; }
  // The update's tensors, in order.
  const std::vector<PayloadTensor>& update() const { return update_; }
  bool with_optimizer_state() const { return with_optimizer_state_; }
  bool compressed() const {
    return form_.encoding.codec != UpdateCodec::kNone;
  }
  // Whether the assignment carries changes to what the worker holds.
  bool resident() const { return assignment_form_.resident; }
  const AssignmentForm& assignment_form() const { return assignment_form_; }

  // The assignment from the slot's parameters and (with coordinator-kept
  // state) its optimizer state, named as AdamW names it. InvalidArgument
  // naming the first tensor that is missing.
  absl::StatusOr<NamedTensors> ComposeAssignment(
      const NamedTensors& parameters, const NamedTensors& optimizer_state) const;
  // The update from the trained parameters (or their deltas) and the
  // optimizer's State(); its step counts stay behind. InvalidArgument naming
  // the first tensor that is missing.
  absl::StatusOr<NamedTensors> ComposeUpdate(
      const NamedTensors& parameters, const NamedTensors& optimizer_state) const;

  // Worker, compressed form: the update of `values` (float32 deltas plus
  // what earlier codes left behind, by parameter name, the subnetwork's
  // shapes, any device) and what its codes do not carry, zero at the leaving
  // units (their leftovers are in the update). InvalidArgument naming a
  // missing parameter.
  absl::StatusOr<EncodedUpdate> EncodeUpdate(const NamedTensors& values) const;
  // Coordinator, compressed form: the float32 parameter deltas an update
  // carries, by parameter name, leftovers added. InvalidArgument naming the
  // tensor that does not decode, and why.
  absl::StatusOr<NamedTensors> DecodeUpdate(const NamedTensors& update) const;

  // Worker, resident form: the subnetwork's weights in the wire's type on
  // `device`, from the received `assignment` and what the worker holds of
  // the view (`held`, the wire's type, laid out for `held_units`): held
  // plus the decoded change, rounded to the wire's type, for the replicated
  // parameters and the resident units, the received weights for the rest.
  // The coordinator's SharedView advances its copy by the same arithmetic,
  // so the two stay equal bit for bit. InvalidArgument naming the tensor
  // that does not decode, or a resident unit the worker does not hold.
  absl::StatusOr<NamedTensors> ReceiveView(const NamedTensors& assignment,
                                           const SubnetUnits& held_units,
                                           const NamedTensors& held,
                                           const at::Device& device) const;

  // The units of the slot the assignment carries as weights (all of them
  // unless resident).
  SubnetUnits SentUnits() const;

  // Either direction's tensors, split by part; the tensors are shared, not
  // copied.
  static PayloadParts Split(const NamedTensors& payload);

 private:
  // The plain layouts, parameters and moments in `wire`.
  void LayOut(at::ScalarType wire);
  // The update's parameters as codes, and the leftovers after them.
  void LayOutCompressedUpdate(at::ScalarType wire);
  // The assignment's parameters as changes to the resident units and
  // weights of the rest.
  void LayOutResidentAssignment(at::ScalarType wire);

  const ModelConfig full_;
  const SubnetUnits units_;
  const bool with_optimizer_state_;
  const UpdateForm form_;
  const at::ScalarType wire_;
  const AssignmentForm assignment_form_;
  std::vector<PayloadTensor> assignment_;
  std::vector<PayloadTensor> update_;
};

}  // namespace twist::common

#endif  // TWIST_COMMON_IST_SLOT_PAYLOAD_H_
