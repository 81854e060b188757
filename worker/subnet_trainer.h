// What a worker does with one assignment, without networking: make ready the
// subnetwork model the header describes on the worker's device, check the
// dataset, train it for the round's local steps with the optimizer state the
// job asks for (fresh, kept by this worker from round to round, or sent by
// the coordinator), and hand back the trained tensors. The one place where the
// worker converts between the wire's element type and its own: it widens what
// arrives in bfloat16 and returns its changes in bfloat16. The worker daemon
// streams around this class; tests and the determinism reference call it
// directly.
//
// Residency: the model and the worker-kept optimizer state stay on the device
// from one round to the next. A round whose subnetwork has the shapes of the
// last one (every round of a rolling deal with equal quotas) trains the same
// module again: nothing is rebuilt on the CPU and moved. Chunks land in host
// buffers (pinned when the device is a GPU, so the copies to it are
// asynchronous), except float32 on the CPU, where they land in the
// parameters themselves; the trained slices come back the same way.
#ifndef TWIST_WORKER_SUBNET_TRAINER_H_
#define TWIST_WORKER_SUBNET_TRAINER_H_

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/data/dataset.h"
#include "common/ist/slot_payload.h"
#include "common/ist/subnet.h"
#include "common/model/gpt.h"
#include "common/model/model_config.h"
#include "common/model/named_tensors.h"
#include "common/training/local_training.h"
#include "twist/v1/worker_service.pb.h"

namespace twist::worker {

// A subnetwork model allocated for an assignment, not yet filled.
struct PreparedSubnet {
  twist::v1::AssignmentHeader header;
  common::ModelConfig full;
  common::SubnetUnits units;
  common::Gpt model{nullptr};  // on the worker's device
  // Where the streamed chunks are written, in the header's order: host
  // tensors in the wire's element type that Train() copies to the device
  // (pinned there for a GPU), or the model's parameters themselves
  // (receives_in_place); then, for coordinator-kept optimizer state, its
  // tensors, as common/ist/slot_payload.h lays an assignment out.
  common::NamedTensors receive_into;
  bool reduced_precision = false;
  bool with_optimizer_state = false;
  // float32 on the CPU: the parameters in receive_into are the model's.
  bool receives_in_place = false;
  // The job compresses updates: they are deltas, and what their codes do not
  // carry is kept for the next update (error feedback).
  bool error_feedback = false;
  // How this round's update travels (the header's update_compression and
  // leaving_units).
  common::UpdateForm update_form;
  // Compressed jobs: the worker keeps the coordinator's view of its units
  // (common/ist/shared_view.h), and the assignment may carry changes to it
  // (the header's resident_round and resident_units).
  bool keeps_view = false;
  common::AssignmentForm assignment_form;
};

// What a worker's updates have not carried yet (error feedback): float32, by
// parameter, laid out for `units`, on the worker's device, as the update of
// `round` left it. A later round of the same job adds it to the parameters
// it received before training (so it is in that round's update),
// also after a coordinator restart that resumes after `round`; one that
// resumes at or before it retrains those rounds, and the residual is dropped
// (checkpoint rounds flush it, so nothing from before the checkpoint is in
// it).
struct Residual {
  int64_t job_id = 0;
  int32_t round = 0;
  common::SubnetUnits units;
  common::NamedTensors values;
};

struct TrainedSubnet {
  // CPU, contiguous, model order: the trained weights, or (reduced-precision
  // transport) trained-minus-received deltas in the wire's element type;
  // then, for coordinator-kept state, the moments the same way.
  common::NamedTensors tensors;
  bool deltas = false;
  common::LocalTrainingResult result;  // the steps trained ahead included
  int steps_ahead = 0;  // of result.steps, trained ahead (TrainAhead)
  int64_t parameters = 0;
  // With error feedback: what this update leaves behind, for KeepResidual()
  // once the coordinator accepts it.
  std::shared_ptr<Residual> residual;
};

class SubnetTrainer {
 public:
  struct Options {
    torch::Device device = torch::kCPU;
    // When set, a job's dataset is looked up as <data_dir>/<last component
    // of its data.path> instead of data.path itself.
    std::string data_dir;
    std::string worker_name;  // named in errors
    // Assignments whose tensors take more bytes are refused (0: no limit).
    int64_t max_assignment_bytes = 0;
  };

  explicit SubnetTrainer(Options options);

  // Makes ready the subnetwork the header describes: the resident model when
  // its shapes match, else a new one on the device. InvalidArgument when the
  // header's units or tensor list do not match its spec; ResourceExhausted
  // when its tensors exceed max_assignment_bytes; FailedPrecondition when
  // the job's compute_dtype is bfloat16 and the device has no bfloat16
  // units. Not to be called while a Train() runs.
  absl::StatusOr<PreparedSubnet> Prepare(
      const twist::v1::AssignmentHeader& header);

  // Trains the received subnetwork. FailedPrecondition (with the worker's
  // name, host and path) when the dataset is missing or differs from the
  // job's (content hash); Cancelled when `should_stop` fires. When
  // TrainAhead() trained this round's first steps, the assignment's weights
  // take the progress of those steps and training goes on from the step
  // after them.
  absl::StatusOr<TrainedSubnet> Train(PreparedSubnet& subnet,
                                      std::function<bool()> should_stop = {});

  // Overlapping rounds (the job's overlap_steps): whether the last Train()
  // left the next round's first steps to train ahead.
  bool HasStepsAhead() const { return ahead_ != nullptr && !ahead_->trained; }
  // Trains them on the weights the last update was computed from, with the
  // optimizer state it ended with, while the coordinator merges and deals;
  // the next Train() of that round (same job and coordinator) carries their
  // progress onto its weights, unit by unit. May run while Prepare() and the
  // receipt of the next assignment do; not with Train(). Cancelled when
  // `should_stop` fires (the steps are then dropped).
  absl::Status TrainAhead(std::function<bool()> should_stop = {});

  // Keeps what an accepted update left behind, to be added to the next
  // update of the same job and units. An update the coordinator did not take
  // (stale, late, refused) leaves the residual before it in place.
  void KeepResidual(std::shared_ptr<Residual> residual) {
    residual_ = std::move(residual);
  }

  // The coordinator's view of this worker's units as it last received it
  // (compressed jobs): in the wire's type, on the device.
  struct View {
    uint64_t incarnation = 0;
    int64_t job_id = 0;
    int32_t round = 0;
    common::SubnetUnits units;
    common::NamedTensors tensors;
  };
  const View* view() const { return view_.get(); }

  // Where this worker reads the job's dataset.
  std::string DatasetPath(const twist::v1::JobSpec& spec) const;

  // The model kept on the device since the last Prepare() (null before).
  const common::Gpt& resident_model() const { return resident_; }

 private:
  // The first steps of a round trained ahead (TrainAhead), on the last
  // round's subnetwork.
  struct Ahead {
    uint64_t incarnation = 0;
    int64_t job_id = 0;
    int32_t round = 0;  // the round the steps belong to
    int32_t slot = 0;   // their batches: the last round's slot
    twist::v1::JobSpec spec;
    common::ModelConfig full;
    common::SubnetUnits units;  // the last round's
    common::Gpt model{nullptr};
    // Before training: the weights the steps start from (the last update's)
    // and the optimizer state (empty: fresh). After: the weights' change
    // over the steps (float32) and the state they end with.
    common::NamedTensors start;
    common::NamedTensors state;
    bool trained = false;
    common::NamedTensors progress;
    common::LocalTrainingResult result;
  };

  absl::StatusOr<const common::Dataset*> OpenDataset(
      const twist::v1::JobSpec& spec);
  // The optimizer state this round starts from (empty: fresh): the one the
  // steps ahead ended with, when `ahead` is set.
  absl::StatusOr<common::NamedTensors> StartingState(
      const PreparedSubnet& subnet, const Ahead* ahead);
  // Keeps `state` (the optimizer's, for `units`) for the next round of the
  // header's job when the worker keeps the optimizer state; drops what was
  // kept otherwise.
  void KeepState(const twist::v1::AssignmentHeader& header,
                 const common::SubnetUnits& units, common::NamedTensors state);
  // The steps trained ahead of the header's round, when they are its (same
  // coordinator, job and round, trained); else null, and they are dropped.
  std::unique_ptr<Ahead> TakeAhead(const twist::v1::AssignmentHeader& header);
  // After Train() of a round that has a next one: keeps what TrainAhead()
  // needs (`trained`: the weights the update is computed from, not the
  // parameters themselves).
  void LeaveStepsAhead(const PreparedSubnet& subnet,
                       const common::NamedTensors& trained,
                       const common::NamedTensors& state);

  // Error feedback: keeps what arrived in `received` (a copy when it landed
  // in the parameters) and adds the kept residual of this job, laid out for
  // this round's units, to the parameters, so the worker trains from the
  // model it would hold had its earlier updates arrived whole (it does not
  // learn again what it has not sent yet).
  absl::Status AddResidual(const PreparedSubnet& subnet,
                           common::NamedTensors* received) const;
  // The compressed (or, in a flushing round, wire-typed) deltas of
  // `trained` against `received`, the residual included (training started
  // from it); what they do not carry goes to out->residual.
  absl::StatusOr<common::NamedTensors> CompressedUpdate(
      const PreparedSubnet& subnet, const common::NamedTensors& trained,
      const common::NamedTensors& received, TrainedSubnet* out) const;

  // The assignment's form from the header: InvalidArgument for resident
  // units outside the slot's, FailedPrecondition when the worker does not
  // hold the view the changes apply to.
  absl::StatusOr<common::AssignmentForm> AssignmentFormOf(
      const PreparedSubnet& subnet) const;
  // The received weights (resident form: the view advanced by the received
  // changes) into the model's parameters and `received`; kept as the view.
  absl::Status ReceiveView(PreparedSubnet& subnet,
                           common::NamedTensors* received);

  // ResourceExhausted when an assignment of `bytes` exceeds the limit.
  absl::Status CheckAssignmentBytes(int64_t bytes) const;
  // FailedPrecondition when the device cannot compute in bfloat16.
  absl::Status CheckBFloat16Support();
  // Where `payload`'s assignment lands: the model's parameters themselves
  // (receives_in_place) or host buffers, in the payload's order.
  common::NamedTensors ReceiveBuffers(const PreparedSubnet& subnet,
                                      const common::SlotPayload& payload) const;
  // InvalidArgument unless the header announces exactly `expected`'s names,
  // element types and shapes, in order.
  absl::Status CheckAnnounced(const twist::v1::AssignmentHeader& header,
                              const common::NamedTensors& expected) const;
  // Host tensors in `wire` type shaped like `shape`, pinned for a GPU.
  at::Tensor HostBuffer(at::IntArrayRef shape, at::ScalarType wire) const;

  const Options options_;
  // Whether options_.device computes bfloat16 (CheckBFloat16Compute), asked
  // once, at the first bfloat16 job.
  std::unique_ptr<absl::Status> bfloat16_support_;
  // The last round's model, on the device.
  common::Gpt resident_{nullptr};
  std::string dataset_path_;
  std::unique_ptr<common::Dataset> dataset_;  // the last one used, cached

  // Worker-resident optimizer state: the moments and steps of the units of
  // the last round trained, for the next round of the same job.
  struct KeptState {
    uint64_t incarnation = 0;
    int64_t job_id = 0;
    common::SubnetUnits units;
    common::NamedTensors state;  // on the device (steps on the CPU)
  };
  std::unique_ptr<KeptState> kept_;
  // What the last accepted compressed update did not carry.
  std::shared_ptr<Residual> residual_;
  std::unique_ptr<View> view_;
  std::unique_ptr<Ahead> ahead_;
};

}  // namespace twist::worker

#endif  // TWIST_WORKER_SUBNET_TRAINER_H_
