// What a worker does with one assignment, without networking: allocate the
// subnetwork model the header describes (its parameters are where the
// streamed tensors land), check the dataset, train it for the round's local
// steps with the optimizer state the job asks for (fresh, kept by this worker
// from round to round, or sent by the coordinator), and hand back the trained
// tensors. The one place where the worker converts between the wire's element
// type and its own: it widens what arrives in bfloat16 and returns its
// changes in bfloat16. The worker daemon streams around this class; tests and
// the determinism reference call it directly.
#ifndef TWIST_WORKER_SUBNET_TRAINER_H_
#define TWIST_WORKER_SUBNET_TRAINER_H_

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/data/dataset.h"
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
  common::Gpt model{nullptr};  // on the CPU until Train() moves it
  // Where the streamed chunks are written, in the header's order: the
  // model's parameters themselves (float32 transport) or bfloat16 staging
  // tensors that Train() widens into them, then, for coordinator-kept
  // optimizer state, its tensors ("exp_avg.<name>", "exp_avg_sq.<name>",
  // "steps.<name>").
  common::NamedTensors receive_into;
  bool reduced_precision = false;
  bool with_optimizer_state = false;
};

struct TrainedSubnet {
  // CPU, contiguous, model order: the trained weights, or (reduced-precision
  // transport) trained-minus-received deltas in the wire's element type;
  // then, for coordinator-kept state, the moments the same way.
  common::NamedTensors tensors;
  bool deltas = false;
  common::LocalTrainingResult result;
  int64_t parameters = 0;
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

  // Allocates the subnetwork the header describes. InvalidArgument when the
  // header's units or tensor list do not match its spec; ResourceExhausted
  // when its tensors exceed max_assignment_bytes.
  absl::StatusOr<PreparedSubnet> Prepare(
      const twist::v1::AssignmentHeader& header) const;

  // Trains the received subnetwork. FailedPrecondition (with the worker's
  // name, host and path) when the dataset is missing or differs from the
  // job's (content hash); Cancelled when `should_stop` fires.
  absl::StatusOr<TrainedSubnet> Train(PreparedSubnet& subnet,
                                      std::function<bool()> should_stop = {});

  // Where this worker reads the job's dataset.
  std::string DatasetPath(const twist::v1::JobSpec& spec) const;

 private:
  absl::StatusOr<const common::Dataset*> OpenDataset(
      const twist::v1::JobSpec& spec);
  // The optimizer state this round starts from (empty: fresh).
  absl::StatusOr<common::NamedTensors> StartingState(
      const PreparedSubnet& subnet);

  const Options options_;
  std::string dataset_path_;
  std::unique_ptr<common::Dataset> dataset_;  // the last one used, cached

  // Worker-resident optimizer state: the moments and steps of the units of
  // the last round trained, for the next round of the same job.
  struct KeptState {
    uint64_t incarnation = 0;
    int64_t job_id = 0;
    common::SubnetUnits units;
    common::NamedTensors state;  // CPU
  };
  std::unique_ptr<KeptState> kept_;
};

}  // namespace twist::worker

#endif  // TWIST_WORKER_SUBNET_TRAINER_H_
