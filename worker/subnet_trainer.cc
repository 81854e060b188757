#include "worker/subnet_trainer.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/base/files.h"
#include "common/base/free_memory.h"
#include "common/base/status_macros.h"
#include "common/ist/optimizer_state.h"
#include "common/job/job_config.h"
#include "common/job/round_options.h"
#include "common/model/model_io.h"
#include "common/ist/slot_payload.h"
#include "common/training/adamw.h"
#include "common/training/compute_dtype.h"
#include "common/transport/subnet_proto.h"
#include "common/transport/wire_dtype.h"

namespace twist::worker {
namespace {

bool CoordinatorKeepsState(const twist::v1::JobSpec& spec) {
  return spec.optimizer().state() == twist::v1::OPTIMIZER_STATE_COORDINATOR;
}

// This round's local steps: the header's (an unequal quota shared out as
// local steps), or the job's from a coordinator that does not set them.
int32_t LocalStepsOf(const twist::v1::AssignmentHeader& header) {
  return header.local_steps() > 0 ? header.local_steps()
                                  : header.spec().local_steps();
}

// How the header asks this round's update to travel.
common::UpdateForm UpdateFormOf(const twist::v1::AssignmentHeader& header) {
  common::UpdateForm form;
  form.encoding = common::UpdateEncodingOf(header.spec());
  form.encoding.codec = common::UpdateCodecOf(header.update_compression());
  form.leaving = common::FromProto(header.leaving_units());
  form.leaving.layers.resize(header.units().layers_size());
  return form;
}

// A tensor that arrived in `wire` form, widened to float32 on `device` (a
// copy either way: it is kept to take deltas against).
at::Tensor Widened(const at::Tensor& wire, const torch::Device& device) {
  return wire.to(device, at::kFloat, /*non_blocking=*/false, /*copy=*/true);
}

// Whether `model`'s parameters have exactly the shapes of `config`'s.
bool SameShapes(common::GptImpl& model, const common::ModelConfig& config) {
  const common::NamedTensors params = common::ParameterTensors(model);
  const std::vector<common::ParameterShape> want =
      common::ParameterShapes(config);
  if (params.size() != want.size()) return false;
  for (size_t i = 0; i < want.size(); ++i) {
    if (params[i].name != want[i].name ||
        params[i].tensor.sizes().vec() != want[i].shape) {
      return false;
    }
  }
  return true;
}

// Whether `units` holds every unit of `subset`.
bool Within(const common::SubnetUnits& subset,
            const common::SubnetUnits& units) {
  for (const auto& layer : common::UnitsNotIn(subset, units).layers) {
    if (!layer.heads.empty() || !layer.ffn_columns.empty()) return false;
  }
  return true;
}

}  // namespace

SubnetTrainer::SubnetTrainer(Options options) : options_(std::move(options)) {}

std::string SubnetTrainer::DatasetPath(const twist::v1::JobSpec& spec) const {
  if (options_.data_dir.empty()) return spec.data().path();
  std::filesystem::path p(spec.data().path());
  if (!p.has_filename()) p = p.parent_path();
  return (std::filesystem::path(options_.data_dir) / p.filename()).string();
}

at::Tensor SubnetTrainer::HostBuffer(at::IntArrayRef shape,
                                     at::ScalarType wire) const {
  return at::empty(shape, at::TensorOptions().dtype(wire).pinned_memory(
                              options_.device.is_cuda()));
}

absl::StatusOr<PreparedSubnet> SubnetTrainer::Prepare(
    const twist::v1::AssignmentHeader& header) {
  PreparedSubnet out;
  out.header = header;
  out.full = common::ModelConfigOf(header.spec());
  TWIST_RETURN_IF_ERROR(out.full.Validate());
  out.units = common::FromProto(header.units());
  TWIST_RETURN_IF_ERROR(common::ValidateUnits(out.full, out.units));
  const at::ScalarType wire = common::WireDtypeOf(header.spec());
  out.reduced_precision = wire != at::kFloat;
  out.with_optimizer_state = CoordinatorKeepsState(header.spec());
  const common::ModelConfig sub = common::SubnetConfig(out.full, out.units);
  TWIST_RETURN_IF_ERROR(CheckAssignmentBytes(
      sub.NumParameters() * c10::elementSize(wire) *
      (out.with_optimizer_state ? 3 : 1)));
  if (header.spec().compute_dtype() == twist::v1::COMPUTE_DTYPE_BFLOAT16) {
    TWIST_RETURN_IF_ERROR(CheckBFloat16Support());
  }
  if (resident_.is_empty() || !SameShapes(*resident_, sub)) {
    resident_ = nullptr;  // free the old model before allocating the new one
    common::Gpt model(sub);
    model->to(options_.device);
    resident_ = model;
  }
  out.model = resident_;  // its scales are set by Train(): it may be training ahead
  out.error_feedback =
      common::UpdateCodecOf(header.spec().compression()) != common::UpdateCodec::kNone;
  out.keeps_view = out.error_feedback;
  // Not while the model trains ahead, nor into the view.
  out.receives_in_place = !out.reduced_precision &&
                          options_.device.is_cpu() && !out.keeps_view &&
                          header.spec().overlap_steps() == 0;
  out.update_form = UpdateFormOf(header);
  TWIST_ASSIGN_OR_RETURN(out.assignment_form, AssignmentFormOf(out));
  if (!out.keeps_view) view_.reset();
  const common::SlotPayload payload(out.full, out.units, wire,
                                    out.with_optimizer_state, {},
                                    out.assignment_form);
  common::NamedTensors expected = ReceiveBuffers(out, payload);
  TWIST_RETURN_IF_ERROR(CheckAnnounced(header, expected));
  out.receive_into = std::move(expected);
  return out;
}

absl::StatusOr<common::AssignmentForm> SubnetTrainer::AssignmentFormOf(
    const PreparedSubnet& subnet) const {
  const auto& h = subnet.header;
  common::AssignmentForm form;
  if (h.resident_round() <= 0) return form;
  form.encoding = common::ChangeEncodingOf(h.spec());
  form.resident = true;
  form.resident_units = common::FromProto(h.resident_units());
  form.resident_units.layers.resize(subnet.full.n_layer);
  if (!subnet.keeps_view ||
      !common::ValidateUnits(subnet.full, form.resident_units).ok() ||
      !Within(form.resident_units, subnet.units)) {
    return absl::InvalidArgumentError(
        "the assignment's resident units are not units of its slot of a "
        "compressed job");
  }
  if (view_ == nullptr || view_->incarnation != h.incarnation() ||
      view_->job_id != h.job_id() || view_->round != h.resident_round() ||
      !Within(form.resident_units, view_->units)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker ", options_.worker_name, " on ", common::HostName(),
        ": the assignment changes the units it held in round ",
        h.resident_round(), " of job ", h.job_id(),
        ", which it does not hold (was it restarted?)"));
  }
  return form;
}

absl::Status SubnetTrainer::ReceiveView(PreparedSubnet& subnet,
                                        common::NamedTensors* received) {
  const auto& h = subnet.header;
  const common::SlotPayload payload(subnet.full, subnet.units,
                                    common::WireDtypeOf(h.spec()),
                                    subnet.with_optimizer_state, {},
                                    subnet.assignment_form);
  static const common::NamedTensors kNothing;
  const bool resident = subnet.assignment_form.resident;
  TWIST_ASSIGN_OR_RETURN(
      common::NamedTensors tensors,
      payload.ReceiveView(subnet.receive_into,
                          resident ? view_->units : common::SubnetUnits{},
                          resident ? view_->tensors : kNothing,
                          options_.device));
  torch::NoGradGuard no_grad;
  for (const auto& [name, param] : common::ParameterTensors(*subnet.model)) {
    const at::Tensor& t = *tensors.Find(name);
    param.copy_(t, /*non_blocking=*/true);
    received->Set(name, t);
  }
  auto view = std::make_unique<View>();
  view->incarnation = h.incarnation();
  view->job_id = h.job_id();
  view->round = h.round();
  view->units = subnet.units;
  view->tensors = std::move(tensors);
  view_ = std::move(view);
  return absl::OkStatus();
}

absl::Status SubnetTrainer::CheckAssignmentBytes(int64_t bytes) const {
  if (options_.max_assignment_bytes > 0 &&
      bytes > options_.max_assignment_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "worker ", options_.worker_name, " on ", common::HostName(),
        ": the assignment's tensors take ", bytes,
        " bytes, more than its --max_assignment_bytes=",
        options_.max_assignment_bytes,
        ": raise the limit or give the job a smaller keep_ratio"));
  }
  return absl::OkStatus();
}

absl::Status SubnetTrainer::CheckBFloat16Support() {
  if (bfloat16_support_ == nullptr) {
    bfloat16_support_ = std::make_unique<absl::Status>(
        common::CheckBFloat16Compute(options_.device));
  }
  if (!bfloat16_support_->ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker ", options_.worker_name, " on ",
                     common::HostName(), ": ", bfloat16_support_->message()));
  }
  return absl::OkStatus();
}

common::NamedTensors SubnetTrainer::ReceiveBuffers(
    const PreparedSubnet& subnet, const common::SlotPayload& payload) const {
  const common::NamedTensors params = common::ParameterTensors(*subnet.model.ptr());
  common::NamedTensors out;
  for (const common::PayloadTensor& t : payload.assignment()) {
    if (t.part == common::PayloadPart::kParameter && subnet.receives_in_place) {
      out.Set(t.name, *params.Find(t.name));
    } else if (t.part == common::PayloadPart::kSteps) {
      out.Set(t.name, at::empty(t.shape, at::TensorOptions().dtype(t.dtype)));
    } else {
      out.Set(t.name, HostBuffer(t.shape, t.dtype));
    }
  }
  return out;
}

absl::Status SubnetTrainer::CheckAnnounced(
    const twist::v1::AssignmentHeader& header,
    const common::NamedTensors& expected) const {
  if (header.tensors_size() != static_cast<int>(expected.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "assignment announces ", header.tensors_size(), " tensors but the ",
        CoordinatorKeepsState(header.spec())
            ? "subnetwork and its optimizer state have "
            : "subnetwork has ",
        expected.size()));
  }
  for (int i = 0; i < header.tensors_size(); ++i) {
    const auto& info = header.tensors(i);
    const auto& want = expected[i];
    absl::StatusOr<twist::v1::DType> dtype =
        common::ToWireDType(want.tensor.scalar_type());
    if (info.name() != want.name || !dtype.ok() || info.dtype() != *dtype ||
        std::vector<int64_t>(info.shape().begin(), info.shape().end()) !=
            want.tensor.sizes().vec()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "assignment tensor ", i, " is '", info.name(), "', expected '",
          want.name, "' of the subnetwork's shape, in ",
          dtype.ok() ? twist::v1::DType_Name(*dtype) : "?"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<const common::Dataset*> SubnetTrainer::OpenDataset(
    const twist::v1::JobSpec& spec) {
  const std::string path = DatasetPath(spec);
  if (dataset_ == nullptr || dataset_path_ != path) {
    absl::StatusOr<common::Dataset> opened = common::Dataset::Open(path);
    if (!opened.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("worker ", options_.worker_name, " on ",
                       common::HostName(), ": ", opened.status().message()));
    }
    dataset_ = std::make_unique<common::Dataset>(std::move(*opened));
    dataset_path_ = path;
  }
  const std::string& want = spec.data().content_hash();
  if (!want.empty() && dataset_->meta().content_hash != want) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker ", options_.worker_name, " on ", common::HostName(),
        ": dataset ", path, " has content hash ",
        dataset_->meta().content_hash, " but the job expects ", want,
        ": copy the coordinator's dataset to this machine (or pass "
        "--data_dir)"));
  }
  return dataset_.get();
}

absl::StatusOr<common::NamedTensors> SubnetTrainer::StartingState(
    const PreparedSubnet& subnet, const Ahead* ahead) {
  const auto& h = subnet.header;
  if (ahead != nullptr) {
    return common::CarryState(subnet.full, ahead->units, subnet.units,
                              std::move(ahead->state));
  }
  switch (h.spec().optimizer().state()) {
    case twist::v1::OPTIMIZER_STATE_COORDINATOR: {
      common::NamedTensors state;
      for (const auto& [name, t] :
           common::SlotPayload::Split(subnet.receive_into).optimizer_state) {
        state.Set(name, Widened(t, options_.device));
      }
      return state;
    }
    case twist::v1::OPTIMIZER_STATE_WORKER:
      if (kept_ != nullptr && kept_->incarnation == h.incarnation() &&
          kept_->job_id == h.job_id()) {
        // Moved into this round's layout: the old layout is not held beside
        // it (Train() keeps the optimizer's state again, also when the round
        // fails).
        const std::unique_ptr<KeptState> kept = std::move(kept_);
        return common::CarryState(subnet.full, kept->units, subnet.units,
                                  std::move(kept->state));
      }
      return common::NamedTensors();
    default:
      return common::NamedTensors();
  }
}

absl::StatusOr<TrainedSubnet> SubnetTrainer::Train(
    PreparedSubnet& subnet, std::function<bool()> should_stop) {
  const auto& h = subnet.header;
  const torch::Device device = options_.device;
  TWIST_ASSIGN_OR_RETURN(const common::Dataset* dataset, OpenDataset(h.spec()));
  subnet.model->SetPartialSumScales(
      common::ScalesFor(subnet.full, subnet.units, common::ScalingOf(h.spec())));
  const std::unique_ptr<Ahead> ahead = TakeAhead(h);
  // What arrived goes to the device, in order on its stream (asynchronously
  // from pinned buffers). In bfloat16 transport it is also what the deltas
  // are taken against: the parameters are its exact widening.
  common::NamedTensors received;
  if (subnet.keeps_view) {
    TWIST_RETURN_IF_ERROR(ReceiveView(subnet, &received));
  } else if (!subnet.receives_in_place) {
    torch::NoGradGuard no_grad;
    for (const auto& [name, param] : common::ParameterTensors(*subnet.model)) {
      const at::Tensor on_device =
          subnet.receive_into.Find(name)->to(device, /*non_blocking=*/true);
      param.copy_(on_device, /*non_blocking=*/true);
      if (subnet.reduced_precision || subnet.error_feedback) {
        received.Set(name, on_device);
      }
    }
  }
  if (subnet.error_feedback) {
    TWIST_RETURN_IF_ERROR(AddResidual(subnet, &received));
  }
  if (ahead != nullptr) {
    // The steps ahead moved the last round's weights; the same change, unit
    // by unit, moves the received ones (units new to the worker: none).
    torch::NoGradGuard no_grad;
    for (const auto& [name, param] :
         common::ParameterTensors(*subnet.model.ptr())) {
      TWIST_ASSIGN_OR_RETURN(
          const at::Tensor carried,
          common::CarryAlongUnits(subnet.full, ahead->units, subnet.units,
                                  name, *ahead->progress.Find(name)));
      param.add_(carried);
    }
  }
  TWIST_ASSIGN_OR_RETURN(common::NamedTensors start,
                         StartingState(subnet, ahead.get()));
  if (subnet.reduced_precision && subnet.with_optimizer_state) {
    // The moments travel back as deltas too.
    for (const auto& [name, t] : start) {
      if (!received.Contains(name)) received.Set(name, t.clone());
    }
  }
  common::LocalTrainingOptions options =
      common::TrainingOptionsOf(h.spec(), h.round(), h.slot());
  options.steps = LocalStepsOf(h);
  options.should_stop = std::move(should_stop);
  if (ahead != nullptr) {
    options.first_step = ahead->result.steps;
    options.steps -= ahead->result.steps;
  }
  common::AdamW optimizer(common::ParameterTensors(*subnet.model),
                          common::StepDims(subnet.full, subnet.units),
                          common::AdamWOptionsOf(options));
  if (!start.empty()) {
    TWIST_RETURN_IF_ERROR(optimizer.LoadState(std::move(start)));
  }
  TrainedSubnet out;
  // What the last round and this round's set-up freed (the last update, the
  // optimizer state's old layout) goes back now, before the steps' peak: the
  // hand-back after the last update runs only when a core is idle, and
  // workers that share a machine's cores may keep them busy until this
  // round's steps, which then peaked 0.15-0.35 GB higher some rounds than
  // others. The steps fault their pages in again (a fraction of a second).
  common::ReturnFreeMemory();
  absl::StatusOr<common::LocalTrainingResult> trained_steps =
      common::TrainLocalSteps(*subnet.model, dataset->train(), options,
                              &optimizer);
  if (!trained_steps.ok()) {
    // The state taken out of kept_ for this round stays with the worker.
    KeepState(h, subnet.units, optimizer.State());
    return trained_steps.status();
  }
  out.result = *std::move(trained_steps);
  if (ahead != nullptr) {
    out.result = common::Combined(ahead->result, out.result);
    out.steps_ahead = ahead->result.steps;
  }
  subnet.model->zero_grad(/*set_to_none=*/true);  // not kept between rounds
  torch::NoGradGuard no_grad;
  // What goes back: the parameters, then the moments the coordinator keeps.
  // A copy when the next round's first steps will train the parameters
  // while the update travels.
  const bool steps_ahead = h.spec().overlap_steps() > 0 &&
                           h.round() < h.spec().rounds() &&
                           !subnet.with_optimizer_state;
  common::NamedTensors trained_params;
  for (const auto& [name, param] : common::ParameterTensors(*subnet.model)) {
    trained_params.Set(name,
                       steps_ahead ? param.detach().clone() : param.detach());
  }
  const common::NamedTensors state = optimizer.State();
  const common::SlotPayload payload(
      subnet.full, subnet.units,
      subnet.reduced_precision ? at::kBFloat16 : at::kFloat,
      subnet.with_optimizer_state);
  common::NamedTensors wire;
  if (subnet.error_feedback) {
    TWIST_ASSIGN_OR_RETURN(
        wire, CompressedUpdate(subnet, trained_params, received, &out));
  } else {
    TWIST_ASSIGN_OR_RETURN(const common::NamedTensors trained,
                           payload.ComposeUpdate(trained_params, state));
    for (const auto& [name, t] : trained) {
      wire.Set(name, subnet.reduced_precision
                         ? (t - *received.Find(name)).to(at::kBFloat16)
                         : t);
    }
  }
  for (const auto& [name, t] : wire) {
    at::Tensor back = t;
    if (back.is_cpu()) {
      back = back.contiguous();
    } else {
      at::Tensor host = HostBuffer(back.sizes(), back.scalar_type());
      host.copy_(back, /*non_blocking=*/true);
      back = host;
    }
    out.tensors.Set(name, back);
  }
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
  KeepState(h, subnet.units, state);
  if (steps_ahead) LeaveStepsAhead(subnet, trained_params, state);
  out.deltas = subnet.reduced_precision || subnet.error_feedback;
  out.parameters = common::SubnetConfig(subnet.full, subnet.units).NumParameters();
  return out;
}

void SubnetTrainer::KeepState(const twist::v1::AssignmentHeader& header,
                              const common::SubnetUnits& units,
                              common::NamedTensors state) {
  if (header.spec().optimizer().state() != twist::v1::OPTIMIZER_STATE_WORKER) {
    kept_.reset();
    return;
  }
  // The optimizer's own tensors, kept where they are: it ends here.
  auto kept = std::make_unique<KeptState>();
  kept->incarnation = header.incarnation();
  kept->job_id = header.job_id();
  kept->units = units;
  kept->state = std::move(state);
  kept_ = std::move(kept);
}

std::unique_ptr<SubnetTrainer::Ahead> SubnetTrainer::TakeAhead(
    const twist::v1::AssignmentHeader& header) {
  std::unique_ptr<Ahead> ahead = std::move(ahead_);
  if (ahead == nullptr || !ahead->trained ||
      ahead->incarnation != header.incarnation() ||
      ahead->job_id != header.job_id() || ahead->round != header.round() ||
      ahead->result.steps >= LocalStepsOf(header)) {
    return nullptr;
  }
  return ahead;
}

void SubnetTrainer::LeaveStepsAhead(const PreparedSubnet& subnet,
                                    const common::NamedTensors& trained,
                                    const common::NamedTensors& state) {
  const auto& h = subnet.header;
  auto ahead = std::make_unique<Ahead>();
  ahead->incarnation = h.incarnation();
  ahead->job_id = h.job_id();
  ahead->round = h.round() + 1;
  ahead->slot = h.slot();
  ahead->spec = h.spec();
  ahead->full = subnet.full;
  ahead->units = subnet.units;
  ahead->model = subnet.model;
  ahead->start = trained;
  // Worker-kept state goes on; fresh state starts afresh with the round.
  if (h.spec().optimizer().state() == twist::v1::OPTIMIZER_STATE_WORKER) {
    ahead->state = state;
  }
  ahead_ = std::move(ahead);
}

absl::Status SubnetTrainer::TrainAhead(std::function<bool()> should_stop) {
  Ahead* ahead = ahead_.get();
  if (ahead == nullptr || ahead->trained) return absl::OkStatus();
  TWIST_ASSIGN_OR_RETURN(const common::Dataset* dataset,
                         OpenDataset(ahead->spec));
  common::LocalTrainingOptions options =
      common::TrainingOptionsOf(ahead->spec, ahead->round, ahead->slot);
  options.steps = ahead->spec.overlap_steps();
  options.should_stop = std::move(should_stop);
  common::AdamW optimizer(common::ParameterTensors(*ahead->model),
                          common::StepDims(ahead->full, ahead->units),
                          common::AdamWOptionsOf(options));
  if (!ahead->state.empty()) {
    // A copy: the kept state is the next round's when these steps are
    // dropped.
    common::NamedTensors state;
    for (const auto& [name, t] : ahead->state) state.Set(name, t.clone());
    TWIST_RETURN_IF_ERROR(optimizer.LoadState(std::move(state)));
  }
  TWIST_ASSIGN_OR_RETURN(ahead->result,
                         common::TrainLocalSteps(*ahead->model,
                                                 dataset->train(), options,
                                                 &optimizer));
  ahead->model->zero_grad(/*set_to_none=*/true);
  torch::NoGradGuard no_grad;
  for (const auto& [name, param] : common::ParameterTensors(*ahead->model)) {
    ahead->progress.Set(name, param.detach() - *ahead->start.Find(name));
  }
  ahead->state = optimizer.State();
  ahead->start = common::NamedTensors();
  ahead->model = nullptr;
  if (options_.device.is_cuda()) torch::cuda::synchronize(options_.device.index());
  ahead->trained = true;
  return absl::OkStatus();
}

absl::Status SubnetTrainer::AddResidual(const PreparedSubnet& subnet,
                                        common::NamedTensors* received) const {
  const auto& h = subnet.header;
  const bool carry = residual_ != nullptr &&
                     residual_->job_id == h.job_id() &&
                     residual_->round < h.round();
  torch::NoGradGuard no_grad;
  for (const auto& [name, param] : common::ParameterTensors(*subnet.model.ptr())) {
    if (subnet.receives_in_place) received->Set(name, param.detach().clone());
    if (!carry) continue;
    TWIST_ASSIGN_OR_RETURN(
        const at::Tensor kept,
        common::CarryAlongUnits(subnet.full, residual_->units, subnet.units,
                                name, *residual_->values.Find(name)));
    param.add_(kept);
  }
  return absl::OkStatus();
}

absl::StatusOr<common::NamedTensors> SubnetTrainer::CompressedUpdate(
    const PreparedSubnet& subnet, const common::NamedTensors& trained,
    const common::NamedTensors& received, TrainedSubnet* out) const {
  const auto& h = subnet.header;
  // Trained from received + residual: the change plus the residual.
  common::NamedTensors values;
  for (const auto& [name, t] : trained) {
    values.Set(name, t - *received.Find(name));
  }
  auto residual = std::make_shared<Residual>();
  residual->job_id = h.job_id();
  residual->round = h.round();
  residual->units = subnet.units;
  common::NamedTensors wire;
  if (subnet.update_form.encoding.codec == common::UpdateCodec::kNone) {
    // A flushing round: everything goes, in the wire's type.
    const at::ScalarType type = common::WireDtypeOf(h.spec());
    for (const auto& [name, x] : values) {
      const at::Tensor sent = x.to(type);
      wire.Set(name, sent);
      residual->values.Set(name, x - sent.to(at::kFloat));
    }
  } else {
    const common::SlotPayload payload(subnet.full, subnet.units,
                                      common::WireDtypeOf(h.spec()),
                                      /*with_optimizer_state=*/false,
                                      subnet.update_form);
    TWIST_ASSIGN_OR_RETURN(common::EncodedUpdate encoded,
                           payload.EncodeUpdate(values));
    wire = std::move(encoded.tensors);
    residual->values = std::move(encoded.left_behind);
  }
  out->residual = std::move(residual);
  return wire;
}

}  // namespace twist::worker
