#include "coordinator/model_state.h"

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/ist/merge.h"
#include "common/model/model_io.h"

namespace twist::coordinator {

ModelState::ModelState(const common::ModelConfig& config, uint64_t seed,
                       bool keeps_optimizer_state)
    : config_(config), module_(config) {
  module_->InitWeights(seed);
  parameters_ = common::ParameterTensors(*module_);
  if (keeps_optimizer_state) {
    optimizer_state_ =
        common::FullOptimizerState::ZerosLike(config_, parameters_);
  }
}

common::NamedTensors ModelState::CloneParameters() const {
  torch::NoGradGuard no_grad;
  common::NamedTensors out;
  for (const auto& [name, t] : parameters_) out.Set(name, t.detach().clone());
  return out;
}

common::NamedTensors ModelState::CheckpointState() const {
  common::NamedTensors out = velocity_;
  if (optimizer_state_) {
    for (const auto& [name, t] : optimizer_state_->Named()) out.Set(name, t);
  }
  return out;
}

absl::Status ModelState::LoadWeights(const common::NamedTensors& initial) {
  return common::LoadParameters(*module_, initial);
}

absl::Status ModelState::WriteCheckpoint(const std::string& job_dir,
                                         int32_t round, int keep) const {
  return coordinator::WriteCheckpoint(job_dir, round, parameters_,
                                      CheckpointState(), keep);
}

absl::Status ModelState::Restore(const Checkpoint& checkpoint) {
  // Velocity by parameter name; everything else is optimizer state.
  common::NamedTensors velocity, optimizer;
  for (const auto& [name, t] : checkpoint.state) {
    (parameters_.Contains(name) ? velocity : optimizer).Set(name, t);
  }
  for (const auto& [name, v] : velocity) {
    if (parameters_.Find(name)->sizes() != v.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "outer optimizer state '", name, "' does not match the model"));
    }
  }
  std::optional<common::FullOptimizerState> restored;
  if (optimizer_state_) {
    TWIST_ASSIGN_OR_RETURN(
        restored,
        common::FullOptimizerState::FromNamed(config_, parameters_, optimizer));
  }
  TWIST_RETURN_IF_ERROR(common::LoadParameters(*module_, checkpoint.model));
  if (restored) optimizer_state_ = *std::move(restored);
  velocity_ = common::NamedTensors();
  for (const auto& [name, v] : velocity) {
    // Stored as the merge stores it (a float32 velocity of an older
    // checkpoint is rounded once).
    velocity_.Set(name, v.to(parameters_.Find(name)->device(),
                             common::kVelocityType)
                            .clone());
  }
  return absl::OkStatus();
}

absl::Status ModelState::Save(const std::string& path) const {
  return common::SaveModel(path, *module_.ptr());
}

}  // namespace twist::coordinator
