// The full model a job trains, as the coordinator holds it between rounds:
// the parameters (owned by a Gpt module, which evaluation and export use),
// the outer optimizer's velocity, and the local optimizer's state when the
// coordinator keeps it.
//
// Its checkpoint form (coordinator/checkpoint.h) is the parameters plus one
// bag of state tensors: the velocity by parameter name, and the optimizer
// state as FullOptimizerState::Named() names it. Not thread-safe: the
// JobRunner guards it.
#ifndef TWIST_COORDINATOR_MODEL_STATE_H_
#define TWIST_COORDINATOR_MODEL_STATE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "common/ist/optimizer_state.h"
#include "common/model/gpt.h"
#include "common/model/model_config.h"
#include "common/model/named_tensors.h"
#include "coordinator/checkpoint.h"

namespace twist::coordinator {

class ModelState {
 public:
  // A model of `config` initialised from `seed`, with no velocity yet and,
  // when `keeps_optimizer_state`, zero optimizer state.
  ModelState(const common::ModelConfig& config, uint64_t seed,
             bool keeps_optimizer_state);

  const common::ModelConfig& config() const { return config_; }
  common::GptImpl& module() const { return *module_.ptr(); }
  // The module's parameters (shared with it).
  const common::NamedTensors& parameters() const { return parameters_; }
  // The outer optimizer's momentum per parameter (empty without momentum).
  common::NamedTensors* velocity() { return &velocity_; }
  // Null unless the coordinator keeps the optimizer state.
  common::FullOptimizerState* optimizer_state() {
    return optimizer_state_ ? &*optimizer_state_ : nullptr;
  }
  const common::FullOptimizerState* optimizer_state() const {
    return optimizer_state_ ? &*optimizer_state_ : nullptr;
  }

  // The parameters, copied.
  common::NamedTensors CloneParameters() const;
  // The velocity and the optimizer state, named for a checkpoint (shared,
  // not copied).
  common::NamedTensors CheckpointState() const;

  // Overwrites the parameters with `initial` (a job's init_from weights).
  absl::Status LoadWeights(const common::NamedTensors& initial);
  // Writes the checkpoint of `round` (checkpoint.h's WriteCheckpoint).
  absl::Status WriteCheckpoint(const std::string& job_dir, int32_t round,
                               int keep) const;
  // Takes the parameters, velocity and optimizer state of `checkpoint`.
  // InvalidArgument naming what does not fit the model.
  absl::Status Restore(const Checkpoint& checkpoint);
  // Writes the model to `path` (common::SaveModel).
  absl::Status Save(const std::string& path) const;

 private:
  const common::ModelConfig config_;
  common::Gpt module_{nullptr};
  common::NamedTensors parameters_;
  common::NamedTensors velocity_;
  std::optional<common::FullOptimizerState> optimizer_state_;
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_MODEL_STATE_H_
