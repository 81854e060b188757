#include "coordinator/job_runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/local_training.h"
#include "common/merge.h"
#include "common/model_io.h"
#include "common/outer_optimizer.h"
#include "common/shift_correction.h"
#include "common/status_macros.h"
#include "common/subnet_proto.h"
#include "coordinator/checkpoint.h"
#include "coordinator/job_spec.h"
#include "coordinator/round_plan.h"
#include "glog/logging.h"

namespace twist::coordinator {
namespace {

double Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

JobRunner::JobRunner(twist::v1::Job job, WorkerRegistry* registry,
                     Options options, Hooks hooks)
    : job_(std::move(job)),
      registry_(registry),
      options_(std::move(options)),
      hooks_(std::move(hooks)),
      config_(ModelConfigOf(job_.spec())) {}

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
  hooks_.set_current_round(nullptr);
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
  common::OuterOptimizerOptions outer;
  outer.learning_rate =
      spec.outer_learning_rate() > 0 ? spec.outer_learning_rate() : 1.0;
  outer.momentum = spec.outer_momentum();
  outer.nesterov = !spec.outer_heavy_ball();
  outer_ = std::make_unique<common::OuterOptimizer>(outer);
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
    record.set_eval_s(Since(start));
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
    if (!loaded.ok()) {
      return absl::DataLossError(
          absl::StrCat("checkpoint ", checkpoint->path,
                       " does not fit the job's model: ", loaded.message()));
    }
    TWIST_RETURN_IF_ERROR(outer_->LoadState(checkpoint->state, params_));
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
                                          params_, outer_->state(),
                                          options_.checkpoints_kept));
  }
  last_checkpoint_round_ = job_.round();
  return absl::OkStatus();
}

absl::StatusOr<common::UnitContributions> JobRunner::Contributions() {
  // A fixed calibration batch carved from the training data (never the
  // validation data), the same every round.
  std::vector<int64_t> inputs, targets;
  TWIST_RETURN_IF_ERROR(
      common::EvalBatch(dataset_->train(), job_.spec().batch_size(),
                        config_.block_size, /*index=*/0, &inputs, &targets));
  auto idx = torch::from_blob(inputs.data(),
                              {job_.spec().batch_size(), config_.block_size},
                              torch::kLong)
                 .clone();
  return common::EstimateUnitContributions(*model_, idx);
}

double JobRunner::StragglerDeadline() const {
  const auto& spec = job_.spec();
  if (recent_seconds_.empty()) return spec.round_deadline_s();
  std::vector<double> sorted(recent_seconds_.begin(), recent_seconds_.end());
  std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2,
                   sorted.end());
  const double median = sorted[sorted.size() / 2];
  return std::min(
      spec.round_deadline_s(),
      std::max(spec.deadline_floor_s(), spec.deadline_factor() * median));
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
  const auto& spec = job_.spec();
  const at::ScalarType wire_dtype =
      spec.transport_dtype() == twist::v1::TRANSPORT_DTYPE_BFLOAT16
          ? at::kBFloat16
          : at::kFloat;
  const auto round_start = std::chrono::steady_clock::now();
  std::vector<twist::v1::WorkerInfo> workers = registry_->LiveWorkers();
  if (spec.max_workers() > 0 &&
      static_cast<int>(workers.size()) > spec.max_workers()) {
    workers.resize(spec.max_workers());
  }
  std::vector<double> capacities;
  for (const auto& w : workers) capacities.push_back(w.capacity());
  TWIST_ASSIGN_OR_RETURN(std::vector<common::SubnetUnits> plan,
                         PlanRound(spec, config_, round, capacities));

  // Extract every slot's tensors. In local_sgd mode every slot gets the same
  // (whole) model: extract it once and share the read-only tensors.
  std::vector<SlotSpec> slots;
  std::vector<std::shared_ptr<Assignment>> assignments;
  {
    absl::MutexLock lock(&model_mu_);
    bool same = true;
    for (const auto& units : plan) same = same && units == plan[0];
    // Into last round's slice tensors where they are free again (sent and
    // dropped): fresh memory would cost a page fault per page.
    slice_pool_.Trim();
    TWIST_ASSIGN_OR_RETURN(
        std::vector<common::NamedTensors> sliced,
        common::ExtractSubnets(
            config_, params_,
            same ? std::vector<common::SubnetUnits>{plan[0]} : plan,
            &slice_pool_));
    // Shift correction: each slot's missing units' mean contributions go into
    // its output biases (and come out again when its update is merged).
    std::vector<common::NamedTensors> shifts(workers.size());
    if (spec.scaling() == twist::v1::SCALING_CORRECTION && !same) {
      TWIST_ASSIGN_OR_RETURN(common::UnitContributions contributions,
                             Contributions());
      for (size_t i = 0; i < workers.size(); ++i) {
        shifts[i] = common::BiasShifts(contributions, plan[i]);
        common::ApplyBiasShifts(shifts[i], sliced[i]);
      }
    }
    if (wire_dtype != at::kFloat) {
      for (auto& tensors : sliced) {
        common::NamedTensors narrow;
        for (const auto& [name, t] : tensors)
          narrow.Set(name, t.to(wire_dtype));
        tensors = std::move(narrow);
      }
    }
    for (size_t i = 0; i < workers.size(); ++i) {
      auto a = std::make_shared<Assignment>();
      // local_sgd: one extraction, shared read-only by every slot.
      a->tensors = same ? sliced[0] : std::move(sliced[i]);
      auto& h = a->header;
      h.set_incarnation(options_.incarnation);
      h.set_job_id(job_.id());
      h.set_round(round);
      h.set_slot(static_cast<int32_t>(i));
      *h.mutable_spec() = spec;
      *h.mutable_units() = common::ToProto(plan[i]);
      *h.mutable_tensors() = common::DescribeTensors(a->tensors);
      slots.push_back(SlotSpec{workers[i].id(), workers[i].name(), plan[i],
                               a->tensors.NumBytes(), std::move(shifts[i])});
      assignments.push_back(std::move(a));
    }
  }
  auto collector = std::make_shared<RoundCollector>(
      options_.incarnation, job_.id(), round, config_, slots, wire_dtype);
  hooks_.set_current_round(collector);
  for (size_t i = 0; i < workers.size(); ++i) {
    registry_->Offer(workers[i].id(), assignments[i]);
  }
  assignments.clear();

  // Wait for the updates; give up on a slot when its worker is lost, on the
  // rest when the round deadline passes.
  const double deadline_s = StragglerDeadline();
  const absl::Time deadline = absl::Now() + absl::Seconds(deadline_s);
  std::set<int> given_up;  // slots whose worker must stop working on them
  for (;;) {
    if (collector->WaitAllSettled(absl::Now() + options_.poll_interval)) break;
    if (cancel.load() || stop.load()) break;
    for (int slot : collector->Outstanding()) {
      std::string why;
      if (!registry_->IsLive(slots[slot].worker_id, &why)) {
        given_up.insert(slot);
        collector->Abandon(slot, why == "left"
                                     ? "worker left (shut down cleanly)"
                                     : absl::StrCat("worker lost: ", why));
      }
    }
    if (absl::Now() >= deadline) {
      for (int slot : collector->Outstanding()) {
        given_up.insert(slot);
        collector->Abandon(
            slot,
            recent_seconds_.empty()
                ? absl::StrFormat("straggler: round deadline of %.1f s passed",
                                  deadline_s)
                : absl::StrFormat(
                      "straggler: round deadline of %.1f s passed "
                      "(%.1f x the median update time, floor %.1f s)",
                      deadline_s, spec.deadline_factor(),
                      spec.deadline_floor_s()));
      }
    }
  }
  for (int slot : collector->Outstanding()) {
    given_up.insert(slot);
    collector->Abandon(
        slot, cancel.load() ? "job cancelled" : "coordinator stopping");
  }
  // Only workers still busy with this round are told to drop it; one that
  // delivered may already be on the next round.
  for (int slot : given_up) {
    registry_->Revoke(slots[slot].worker_id, job_.id(), round);
  }
  hooks_.set_current_round(nullptr);
  if (cancel.load() || stop.load()) return absl::OkStatus();

  // Merge in slot order and apply.
  const auto merge_start = std::chrono::steady_clock::now();
  RoundOutcome outcome;
  {
    absl::MutexLock lock(&model_mu_);
    outcome = collector->MergeInto(params_, *outer_);
  }
  const double merge_s = Since(merge_start);

  // The straggler deadline learns from the last few rounds' update times.
  for (double t : outcome.accepted_seconds) recent_seconds_.push_back(t);
  while (recent_seconds_.size() > 5 * std::max<size_t>(1, slots.size())) {
    recent_seconds_.pop_front();
  }

  twist::v1::RoundRecord record;
  record.set_round(round);
  record.set_deadline_s(deadline_s);
  record.set_train_loss(outcome.mean_train_loss);
  record.set_tokens(outcome.tokens);
  record.set_merge_s(merge_s);
  int64_t bytes_sent = 0;
  for (auto& w : outcome.workers) {
    bytes_sent += w.bytes_sent();
    if (w.accepted() && w.compute_s() > 0) {
      registry_->RecordRound(w.worker_id(), w.tokens() / w.compute_s());
    }
    if (!w.accepted()) {
      LOG(WARNING) << "job " << job_.id() << " round " << round << ": worker "
                   << w.worker_id() << " (" << w.worker_name()
                   << "): " << w.reason();
    }
    *record.add_workers() = std::move(w);
  }
  record.set_bytes_sent(bytes_sent);
  record.set_bytes_received(outcome.bytes_received);

  if (round % spec.eval_every() == 0 || round == spec.rounds()) {
    const auto eval_start = std::chrono::steady_clock::now();
    TWIST_ASSIGN_OR_RETURN(double val_loss, Evaluate());
    record.set_has_val_loss(true);
    record.set_val_loss(val_loss);
    record.set_eval_s(Since(eval_start));
  }
  record.set_duration_s(Since(round_start));
  record.set_finished_at(NowSeconds());
  job_.set_round(round);
  hooks_.round_finished(job_.id(), record);
  LOG(INFO) << absl::StrFormat(
      "job %d round %d/%d: train_loss %.4f%s, %d/%d updates, %.2f s", job_.id(),
      round, spec.rounds(), record.train_loss(),
      record.has_val_loss()
          ? absl::StrFormat(", val_loss %.4f", record.val_loss())
          : "",
      outcome.accepted, collector->num_slots(), record.duration_s());
  return absl::OkStatus();
}

}  // namespace twist::coordinator
