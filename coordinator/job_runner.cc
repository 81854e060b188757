#include "coordinator/job_runner.h"

#include <chrono>
#include <filesystem>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/clock.h"
#include "common/base/status_macros.h"
#include "common/data/batches.h"
#include "common/model/model_io.h"
#include "common/training/evaluation.h"
#include "common/transport/subnet_proto.h"
#include "coordinator/checkpoint.h"
#include "coordinator/job_spec.h"
#include "coordinator/round_plan.h"
#include "glog/logging.h"

namespace twist::coordinator {
namespace {

using common::NowSeconds;
using common::SecondsSince;

at::ScalarType WireDtypeOf(const twist::v1::JobSpec& spec) {
  return spec.transport_dtype() == twist::v1::TRANSPORT_DTYPE_BFLOAT16
             ? at::kBFloat16
             : at::kFloat;
}

common::OuterStep OuterStepOf(const twist::v1::JobSpec& spec) {
  common::OuterStep step;
  step.learning_rate =
      spec.outer_learning_rate() > 0 ? spec.outer_learning_rate() : 1.0;
  step.momentum = spec.outer_momentum();
  step.nesterov = !spec.outer_heavy_ball();
  return step;
}

}  // namespace

JobRunner::JobRunner(twist::v1::Job job, WorkerRegistry* registry,
                     RoundBoard* board, Options options, Hooks hooks)
    : job_(std::move(job)),
      registry_(registry),
      board_(board),
      options_(std::move(options)),
      hooks_(std::move(hooks)),
      config_(ModelConfigOf(job_.spec())),
      wire_dtype_(WireDtypeOf(job_.spec())),
      outer_step_(OuterStepOf(job_.spec())),
      deadline_(job_.spec()) {}

std::string JobRunner::ModelPath(const std::string& job_dir) {
  return job_dir + "/model.safetensors";
}

void JobRunner::SetState(twist::v1::JobState state, const std::string& reason) {
  if (job_.state() == state && job_.reason() == reason) return;
  job_.set_state(state);
  job_.set_reason(reason);
  if (IsFinished(state)) job_.set_finished_at(NowSeconds());
  hooks_.job_changed(job_);
}

common::NamedTensors JobRunner::SnapshotParameters() const {
  absl::MutexLock lock(&model_mu_);
  common::NamedTensors out;
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : params_) out.Set(name, t.detach().clone());
  return out;
}

absl::Status JobRunner::Run(const std::atomic<bool>& cancel,
                            const std::atomic<bool>& stop) {
  absl::Status status = RunRounds(cancel, stop);
  board_->Publish(nullptr);
  if (!status.ok()) {
    LOG(ERROR) << "job " << job_.id() << " failed: " << status;
    SetState(twist::v1::JOB_STATE_FAILED, std::string(status.message()));
    return status;
  }
  if (cancel.load()) {
    SetState(twist::v1::JOB_STATE_CANCELLED, "cancelled by a client");
  }
  return absl::OkStatus();
}

absl::StatusOr<double> JobRunner::Evaluate() {
  absl::MutexLock lock(&model_mu_);
  return common::EvaluateLoss(*model_, dataset_->val(),
                              job_.spec().eval_batches(),
                              job_.spec().batch_size(), config_.block_size);
}

absl::Status JobRunner::RunRounds(const std::atomic<bool>& cancel,
                                  const std::atomic<bool>& stop) {
  const auto& spec = job_.spec();
  TWIST_ASSIGN_OR_RETURN(common::Dataset dataset,
                         common::Dataset::Open(spec.data().path()));
  dataset_ = std::make_unique<common::Dataset>(std::move(dataset));
  {
    absl::MutexLock lock(&model_mu_);
    model_ = common::Gpt(config_);
    model_->InitWeights(spec.seed());
    params_ = common::ParameterTensors(*model_);
  }
  job_.set_parameters(config_.NumParameters());
  TWIST_RETURN_IF_ERROR(Resume());
  if (job_.started_at() == 0) job_.set_started_at(NowSeconds());
  SetState(twist::v1::JOB_STATE_RUNNING, "");

  if (job_.round() == 0) {  // the model before training
    const auto start = std::chrono::steady_clock::now();
    TWIST_ASSIGN_OR_RETURN(double val_loss, Evaluate());
    twist::v1::RoundRecord record;
    record.set_round(0);
    record.set_train_loss(std::numeric_limits<double>::quiet_NaN());
    record.set_has_val_loss(true);
    record.set_val_loss(val_loss);
    record.set_eval_s(SecondsSince(start));
    record.set_duration_s(record.eval_s());
    record.set_finished_at(NowSeconds());
    hooks_.round_finished(job_.id(), record);
    LOG(INFO) << "job " << job_.id() << " round 0: val_loss " << val_loss;
  }

  for (int32_t round = job_.round() + 1; round <= spec.rounds(); ++round) {
    if (cancel.load() || stop.load()) break;
    if (!WaitForWorkers(cancel, stop)) break;
    TWIST_RETURN_IF_ERROR(RunOneRound(round, cancel, stop));
    if (spec.checkpoint_every() > 0 && round % spec.checkpoint_every() == 0 &&
        round < spec.rounds()) {
      TWIST_RETURN_IF_ERROR(SaveCheckpoint());
    }
  }
  if (stop.load() && !cancel.load()) {
    // The coordinator is shutting down: keep the last finished round so a
    // restart resumes from it. A round interrupted midway is run again.
    if (job_.round() > last_checkpoint_round_)
      TWIST_RETURN_IF_ERROR(SaveCheckpoint());
    LOG(INFO) << "job " << job_.id() << " interrupted after round "
              << job_.round() << "; it resumes when the coordinator restarts";
    return absl::OkStatus();
  }
  if (cancel.load()) return absl::OkStatus();

  std::filesystem::create_directories(options_.job_dir);
  {
    absl::MutexLock lock(&model_mu_);
    TWIST_RETURN_IF_ERROR(
        common::SaveModel(ModelPath(options_.job_dir), *model_));
  }
  SetState(twist::v1::JOB_STATE_COMPLETED, "");
  return absl::OkStatus();
}

absl::Status JobRunner::Resume() {
  if (job_.started_at() == 0) return absl::OkStatus();  // a fresh job
  std::vector<std::string> skipped;
  TWIST_ASSIGN_OR_RETURN(std::optional<coordinator::Checkpoint> checkpoint,
                         LoadLatestCheckpoint(options_.job_dir, &skipped));
  std::string notice;
  int32_t round = 0;
  if (checkpoint) {
    absl::MutexLock lock(&model_mu_);
    absl::Status loaded = common::LoadParameters(*model_, checkpoint->model);
    for (const auto& [name, v] : checkpoint->state) {
      const at::Tensor* p = params_.Find(name);
      if (loaded.ok() && (p == nullptr || p->sizes() != v.sizes())) {
        loaded = absl::InvalidArgumentError(absl::StrCat(
            "outer optimizer state '", name, "' does not match the model"));
      }
    }
    if (!loaded.ok()) {
      return absl::DataLossError(
          absl::StrCat("checkpoint ", checkpoint->path,
                       " does not fit the job's model: ", loaded.message()));
    }
    velocity_ = common::NamedTensors();
    for (const auto& [name, v] : checkpoint->state) {
      velocity_.Set(name, v.to(params_.Find(name)->options()).clone());
    }
    round = checkpoint->round;
    notice = absl::StrCat("resumed from the checkpoint of round ", round);
  } else {
    notice = "restarted from the beginning: no usable checkpoint";
  }
  for (const auto& s : skipped) absl::StrAppend(&notice, "; ", s);
  if (!skipped.empty()) LOG(WARNING) << "job " << job_.id() << ": " << notice;
  // The history must match the model: rounds after the checkpoint are run
  // again and replace what was recorded of them.
  TWIST_RETURN_IF_ERROR(
      hooks_.truncate_rounds(job_.id(), checkpoint ? round : -1));
  job_.set_round(round);
  job_.set_notice(notice);
  last_checkpoint_round_ = round;
  LOG(INFO) << "job " << job_.id() << ": " << notice;
  return absl::OkStatus();
}

absl::Status JobRunner::SaveCheckpoint() {
  {
    absl::MutexLock lock(&model_mu_);
    TWIST_RETURN_IF_ERROR(WriteCheckpoint(options_.job_dir, job_.round(),
                                          params_, velocity_,
                                          options_.checkpoints_kept));
  }
  last_checkpoint_round_ = job_.round();
  return absl::OkStatus();
}

absl::StatusOr<common::UnitContributions> JobRunner::Contributions() {
  // A fixed calibration batch carved from the training data (never the
  // validation data), the same every round.
  TWIST_ASSIGN_OR_RETURN(
      torch::Tensor idx,
      common::CalibrationTokens(dataset_->train(), /*batches=*/1,
                                job_.spec().batch_size(), config_.block_size));
  return common::EstimateUnitContributions(*model_, idx);
}

bool JobRunner::WaitForWorkers(const std::atomic<bool>& cancel,
                               const std::atomic<bool>& stop) {
  const int needed = job_.spec().min_workers();
  for (;;) {
    if (cancel.load() || stop.load()) return false;
    const int live = static_cast<int>(registry_->LiveWorkers().size());
    if (live >= needed) {
      SetState(twist::v1::JOB_STATE_RUNNING, "");
      return true;
    }
    SetState(twist::v1::JOB_STATE_WAITING,
             absl::StrCat("waiting for ", needed, " live worker",
                          needed == 1 ? "" : "s", ", ", live, " live"));
    absl::SleepFor(options_.poll_interval * 4);
  }
}

absl::Status JobRunner::RunOneRound(int32_t round,
                                    const std::atomic<bool>& cancel,
                                    const std::atomic<bool>& stop) {
  const auto start = std::chrono::steady_clock::now();
  TWIST_ASSIGN_OR_RETURN(RoundPlan plan, Plan(round));
  TWIST_ASSIGN_OR_RETURN(std::shared_ptr<RoundCollector> collector,
                         Deal(round, plan));
  const double deadline_s = deadline_.Seconds();
  Await(*collector, deadline_s, cancel, stop);
  if (cancel.load() || stop.load()) return absl::OkStatus();
  const auto merge_start = std::chrono::steady_clock::now();
  TWIST_ASSIGN_OR_RETURN(RoundOutcome outcome, Merge(*collector));
  twist::v1::RoundRecord record;
  record.set_round(round);
  record.set_deadline_s(deadline_s);
  record.set_merge_s(SecondsSince(merge_start));
  deadline_.Learn(outcome.accepted_seconds, plan.workers.size());
  TWIST_RETURN_IF_ERROR(Record(round, outcome, start, std::move(record)));
  LOG(INFO) << absl::StrFormat("job %d round %d/%d: %d/%d updates, %.2f s",
                               job_.id(), round, job_.spec().rounds(),
                               outcome.accepted, collector->num_slots(),
                               SecondsSince(start));
  return absl::OkStatus();
}

absl::StatusOr<JobRunner::RoundPlan> JobRunner::Plan(int32_t round) {
  const auto& spec = job_.spec();
  RoundPlan plan;
  plan.workers = registry_->LiveWorkers();
  if (spec.max_workers() > 0 &&
      static_cast<int>(plan.workers.size()) > spec.max_workers()) {
    plan.workers.resize(spec.max_workers());
  }
  std::vector<double> capacities;
  for (const auto& w : plan.workers) capacities.push_back(w.capacity());
  TWIST_ASSIGN_OR_RETURN(plan.units,
                         PlanRound(spec, config_, round, capacities));
  return plan;
}

absl::StatusOr<std::vector<common::NamedTensors>> JobRunner::SliceForSlots(
    const std::vector<common::SubnetUnits>& units,
    std::vector<common::NamedTensors>* shifts) {
  bool same = true;
  for (const auto& u : units) same = same && u == units[0];
  // Into last round's slice tensors where they are free again (sent and
  // dropped): fresh memory would cost a page fault per page.
  slice_pool_.Trim();
  TWIST_ASSIGN_OR_RETURN(
      std::vector<common::NamedTensors> sliced,
      common::ExtractSubnets(
          config_, params_,
          same ? std::vector<common::SubnetUnits>{units[0]} : units,
          wire_dtype_, &slice_pool_));
  shifts->assign(units.size(), common::NamedTensors());
  if (job_.spec().scaling() == twist::v1::SCALING_CORRECTION && !same) {
    // Each slot's missing units' mean contributions go into its output
    // biases (and come out again when its update is merged).
    TWIST_ASSIGN_OR_RETURN(common::UnitContributions contributions,
                           Contributions());
    for (size_t i = 0; i < units.size(); ++i) {
      (*shifts)[i] = common::BiasShifts(contributions, units[i]);
      common::ApplyBiasShifts((*shifts)[i], sliced[i]);
    }
  }
  // local_sgd: one extraction, shared read-only by every slot.
  if (same) sliced.resize(units.size(), sliced[0]);
  return sliced;
}

absl::StatusOr<std::shared_ptr<RoundCollector>> JobRunner::Deal(
    int32_t round, const RoundPlan& plan) {
  std::vector<SlotSpec> slots;
  std::vector<std::shared_ptr<Assignment>> assignments;
  {
    absl::MutexLock lock(&model_mu_);
    std::vector<common::NamedTensors> shifts;
    TWIST_ASSIGN_OR_RETURN(std::vector<common::NamedTensors> sliced,
                           SliceForSlots(plan.units, &shifts));
    for (size_t i = 0; i < plan.workers.size(); ++i) {
      auto a = std::make_shared<Assignment>();
      a->tensors = std::move(sliced[i]);
      auto& h = a->header;
      h.set_incarnation(options_.incarnation);
      h.set_job_id(job_.id());
      h.set_round(round);
      h.set_slot(static_cast<int32_t>(i));
      *h.mutable_spec() = job_.spec();
      *h.mutable_units() = common::ToProto(plan.units[i]);
      *h.mutable_tensors() = common::DescribeTensors(a->tensors);
      slots.push_back(SlotSpec{plan.workers[i].id(), plan.workers[i].name(),
                               plan.units[i], a->tensors.NumBytes(),
                               std::move(shifts[i])});
      assignments.push_back(std::move(a));
    }
  }
  update_pool_.Trim();
  auto collector = std::make_shared<RoundCollector>(
      options_.incarnation, job_.id(), round, config_, std::move(slots),
      wire_dtype_, &update_pool_);
  board_->Publish(collector);
  for (size_t i = 0; i < assignments.size(); ++i) {
    registry_->Offer(plan.workers[i].id(), std::move(assignments[i]));
  }
  return collector;
}

void JobRunner::Await(RoundCollector& collector, double deadline_s,
                      const std::atomic<bool>& cancel,
                      const std::atomic<bool>& stop) {
  const absl::Time deadline = absl::Now() + absl::Seconds(deadline_s);
  for (;;) {
    if (collector.WaitAllSettled(absl::Now() + options_.poll_interval)) break;
    if (cancel.load() || stop.load()) break;
    for (int slot : collector.Outstanding()) {
      const Liveness liveness = registry_->Check(collector.slot(slot).worker_id);
      if (liveness.live()) continue;
      if (liveness.state == Liveness::State::kLeft) {
        collector.Abandon(slot, SlotEnd::kWorkerLeft,
                          "worker left (shut down cleanly)");
      } else {
        collector.Abandon(slot, SlotEnd::kWorkerLost,
                          absl::StrCat("worker lost: ", liveness.reason));
      }
    }
    if (absl::Now() >= deadline) {
      for (int slot : collector.Outstanding()) {
        collector.Abandon(slot, SlotEnd::kDeadline,
                          deadline_.Explain(deadline_s));
      }
    }
  }
  for (int slot : collector.Outstanding()) {
    collector.Abandon(
        slot, SlotEnd::kInterrupted,
        cancel.load() ? "job cancelled" : "coordinator stopping");
  }
  // Workers still busy with a slot that was given up are told to drop it;
  // one that delivered may already be on the next round.
  for (int slot : collector.Abandoned()) {
    registry_->Revoke(collector.slot(slot).worker_id, job_.id(),
                      collector.round());
  }
  board_->Publish(nullptr);
}

absl::StatusOr<RoundOutcome> JobRunner::Merge(RoundCollector& collector) {
  std::vector<SlotResult> results = collector.Close();
  absl::MutexLock lock(&model_mu_);
  merge_pool_.Trim();
  return MergeRound(config_, params_, collector.slots(), results, outer_step_,
                    &velocity_, &merge_pool_);
}

absl::Status JobRunner::Record(int32_t round, const RoundOutcome& outcome,
                               std::chrono::steady_clock::time_point start,
                               twist::v1::RoundRecord record) {
  const auto& spec = job_.spec();
  record.set_train_loss(outcome.mean_train_loss);
  record.set_tokens(outcome.tokens);
  int64_t bytes_sent = 0;
  for (const auto& w : outcome.workers) {
    bytes_sent += w.bytes_sent();
    if (w.accepted() && w.compute_s() > 0) {
      registry_->RecordRound(w.worker_id(), w.tokens() / w.compute_s());
    }
    if (!w.accepted()) {
      LOG(WARNING) << "job " << job_.id() << " round " << round << ": worker "
                   << w.worker_id() << " (" << w.worker_name()
                   << "): " << w.reason();
    }
    *record.add_workers() = w;
  }
  record.set_bytes_sent(bytes_sent);
  record.set_bytes_received(outcome.bytes_received);
  if (round % spec.eval_every() == 0 || round == spec.rounds()) {
    const auto eval_start = std::chrono::steady_clock::now();
    TWIST_ASSIGN_OR_RETURN(double val_loss, Evaluate());
    record.set_has_val_loss(true);
    record.set_val_loss(val_loss);
    record.set_eval_s(SecondsSince(eval_start));
  }
  record.set_duration_s(SecondsSince(start));
  record.set_finished_at(NowSeconds());
  job_.set_round(round);
  hooks_.round_finished(job_.id(), record);
  return absl::OkStatus();
}

}  // namespace twist::coordinator
