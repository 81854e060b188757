// JobRunner's life cycle: start, resume, the loop over rounds (with retries
// of rounds nobody could train), and the end. The steps of one round are in
// job_runner_round.cc.
#include "coordinator/job_runner.h"

#include <chrono>
#include <filesystem>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/base/clock.h"
#include "common/base/files.h"
#include "common/base/status_macros.h"
#include "common/job/round_options.h"
#include "common/model/torch_errors.h"
#include "coordinator/checkpoint.h"
#include "coordinator/init_from.h"
#include "coordinator/job_spec.h"
#include "glog/logging.h"

namespace twist::coordinator {
namespace {

using common::NowSeconds;
using common::SecondsSince;

}  // namespace

JobRunner::JobRunner(twist::v1::Job job, WorkerRegistry* registry,
                     RoundBoard* board, Options options, Hooks hooks)
    : job_(std::move(job)),
      registry_(registry),
      board_(board),
      options_(std::move(options)),
      hooks_(std::move(hooks)),
      spec_(job_.spec()),
      job_id_(job_.id()),
      config_(ModelConfigOf(spec_)),
      wire_dtype_(WireDtypeOf(spec_)),
      outer_step_(OuterStepOf(spec_)),
      deadline_(spec_) {
  const common::UpdateEncoding encoding = common::ChangeEncodingOf(spec_);
  if (encoding.codec != common::UpdateCodec::kNone &&
      spec_.scaling() != twist::v1::SCALING_CORRECTION) {
    shared_view_ =
        std::make_unique<common::SharedView>(config_, wire_dtype_, encoding);
  }
}

std::string JobRunner::ModelPath(const std::string& job_dir) {
  return job_dir + "/model.safetensors";
}

void JobRunner::SetState(twist::v1::JobState state, const std::string& reason) {
  twist::v1::Job copy;
  {
    absl::MutexLock lock(&job_mu_);
    if (job_.state() == state && job_.reason() == reason) return;
    job_.set_state(state);
    job_.set_reason(reason);
    if (IsFinished(state)) job_.set_finished_at(NowSeconds());
    copy = job_;
  }
  hooks_.job_changed(copy);
}

common::NamedTensors JobRunner::SnapshotParameters() const {
  absl::ReaderMutexLock lock(&model_mu_);
  return model_->CloneParameters();
}

absl::Status JobRunner::Run(const std::atomic<bool>& cancel,
                            const std::atomic<bool>& stop) {
  absl::Status status = common::CatchTorchErrors(
      absl::StrCat("job ", job_id_), [&] { return RunRounds(cancel, stop); });
  board_->Publish(nullptr);
  if (status.ok() && finisher_ != nullptr) status = finisher_->Drain();
  finisher_.reset();
  if (!status.ok()) {
    LOG(ERROR) << "job " << job_id_ << " failed: " << status;
    SetState(twist::v1::JOB_STATE_FAILED, std::string(status.message()));
    return status;
  }
  if (cancel.load()) {
    SetState(twist::v1::JOB_STATE_CANCELLED, "cancelled by a client");
  }
  return absl::OkStatus();
}

absl::Status JobRunner::RunRounds(const std::atomic<bool>& cancel,
                                  const std::atomic<bool>& stop) {
  TWIST_ASSIGN_OR_RETURN(const int32_t first_round, Start());
  SetState(twist::v1::JOB_STATE_RUNNING, "");
  if (first_round == 1) TWIST_RETURN_IF_ERROR(EvaluateStart());
  int32_t last_round = first_round - 1;
  for (int32_t round = first_round; round <= spec_.rounds(); ++round) {
    TWIST_ASSIGN_OR_RETURN(const bool finished, RunRound(round, cancel, stop));
    if (!finished) break;
    last_round = round;
  }
  TWIST_RETURN_IF_ERROR(finisher_->Drain());
  if (stop.load() && !cancel.load()) return Interrupt(last_round);
  if (cancel.load()) return absl::OkStatus();
  std::filesystem::create_directories(options_.job_dir);
  {
    absl::ReaderMutexLock lock(&model_mu_);
    TWIST_RETURN_IF_ERROR(model_->Save(ModelPath(options_.job_dir)));
  }
  SetState(twist::v1::JOB_STATE_COMPLETED, "");
  return absl::OkStatus();
}

absl::StatusOr<int32_t> JobRunner::Start() {
  TWIST_ASSIGN_OR_RETURN(common::Dataset dataset,
                         common::Dataset::Open(spec_.data().path()));
  dataset_ = std::make_unique<common::Dataset>(std::move(dataset));
  {
    absl::MutexLock lock(&model_mu_);
    model_ = std::make_unique<ModelState>(
        config_, spec_.seed(),
        spec_.optimizer().state() == twist::v1::OPTIMIZER_STATE_COORDINATOR);
  }
  {
    absl::MutexLock lock(&job_mu_);
    job_.set_parameters(config_.NumParameters());
  }
  TWIST_RETURN_IF_ERROR(Resume());
  bool resumed = false;
  {
    absl::MutexLock lock(&job_mu_);
    resumed = job_.round() > 0;
  }
  if (!spec_.init_from().empty() && !resumed) {
    // Not resumed from a checkpoint: the weights the job was submitted with.
    TWIST_ASSIGN_OR_RETURN(common::NamedTensors initial, LoadInitFrom(spec_));
    absl::MutexLock lock(&model_mu_);
    TWIST_RETURN_IF_ERROR(model_->LoadWeights(initial));
    LOG(INFO) << "job " << job_id_ << ": starts from " << spec_.init_from();
  }
  RoundFinisher::Hooks finisher_hooks;
  finisher_hooks.round_finished = [this](const twist::v1::RoundRecord& r) {
    {
      absl::MutexLock lock(&job_mu_);
      job_.set_round(r.round());
    }
    hooks_.round_finished(job_id_, r);
  };
  finisher_hooks.checkpoint_written = [this](int32_t round) {
    twist::v1::Job copy;
    {
      absl::MutexLock lock(&job_mu_);
      job_.set_checkpoint_round(round);
      copy = job_;
    }
    hooks_.job_changed(copy);
  };
  finisher_ = std::make_unique<RoundFinisher>(
      dataset_->val(),
      RoundFinisher::Options{spec_.eval_batches(), spec_.batch_size(),
                             options_.job_dir, options_.checkpoints_kept},
      std::move(finisher_hooks),
      [this](const RoundFinisher::ModelUse& use) {
        absl::ReaderMutexLock lock(&model_mu_);
        return use(model_->module(), model_->parameters(),
                   model_->CheckpointState());
      });
  absl::MutexLock lock(&job_mu_);
  if (job_.started_at() == 0) job_.set_started_at(NowSeconds());
  return job_.round() + 1;
}

absl::Status JobRunner::EvaluateStart() {
  const auto start = std::chrono::steady_clock::now();
  TWIST_ASSIGN_OR_RETURN(double val_loss, finisher_->EvaluateNow());
  twist::v1::RoundRecord record;
  record.set_round(0);
  record.set_train_loss(std::numeric_limits<double>::quiet_NaN());
  record.set_has_val_loss(true);
  record.set_val_loss(val_loss);
  record.set_eval_s(SecondsSince(start));
  record.set_duration_s(record.eval_s());
  record.set_finished_at(NowSeconds());
  hooks_.round_finished(job_id_, record);
  LOG(INFO) << "job " << job_id_ << " round 0: val_loss " << val_loss;
  return absl::OkStatus();
}

absl::StatusOr<bool> JobRunner::RunRound(int32_t round,
                                         const std::atomic<bool>& cancel,
                                         const std::atomic<bool>& stop) {
  for (int attempt = 1;; ++attempt) {
    TWIST_ASSIGN_OR_RETURN(bool ready, WaitForWorkers(cancel, stop));
    if (!ready) return false;
    int accepted = 0;
    TWIST_RETURN_IF_ERROR(RunOneRound(round, cancel, stop, &accepted));
    // A merged round counts even when a stop came meanwhile: the checkpoint
    // the stop writes must be labelled with it.
    if (accepted > 0) return true;
    if (cancel.load() || stop.load()) return false;
    if (attempt == kMaxEmptyAttempts) {
      return absl::FailedPreconditionError(absl::StrCat(
          "no worker could train round ", round, " in ", attempt, " attempts",
          refusers_.empty() ? " (no update arrived in time)"
                            : absl::StrCat(": ", DescribeRefusals())));
    }
    LOG(WARNING) << "job " << job_id_ << " round " << round << ": attempt "
                 << attempt << " merged no update; dealing it again";
  }
}

absl::Status JobRunner::Interrupt(int32_t last_round) {
  // A round interrupted midway is run again after the restart.
  int32_t checkpointed = 0;
  {
    absl::MutexLock lock(&job_mu_);
    checkpointed = job_.checkpoint_round();
  }
  if (last_round > checkpointed && last_round > 0) {
    {
      absl::ReaderMutexLock lock(&model_mu_);
      TWIST_RETURN_IF_ERROR(model_->WriteCheckpoint(
          options_.job_dir, last_round, options_.checkpoints_kept));
    }
    twist::v1::Job copy;
    {
      absl::MutexLock lock(&job_mu_);
      job_.set_checkpoint_round(last_round);
      copy = job_;
    }
    hooks_.job_changed(copy);
  }
  LOG(INFO) << "job " << job_id_ << " interrupted after round " << last_round
            << "; it resumes when the coordinator restarts";
  return absl::OkStatus();
}

absl::Status JobRunner::Resume() {
  int32_t recorded = 0, rounds_done = 0;
  {
    absl::MutexLock lock(&job_mu_);
    if (job_.started_at() == 0) return absl::OkStatus();  // a fresh job
    recorded = job_.checkpoint_round();
    rounds_done = job_.round();
  }
  std::vector<std::string> skipped;
  TWIST_ASSIGN_OR_RETURN(std::optional<Checkpoint> checkpoint,
                         CheckpointToResume(recorded, rounds_done, &skipped));
  std::string notice;
  int32_t round = 0;
  if (checkpoint) {
    absl::MutexLock lock(&model_mu_);
    if (absl::Status fits = model_->Restore(*checkpoint); !fits.ok()) {
      return absl::DataLossError(
          absl::StrCat("checkpoint ", checkpoint->path,
                       " does not fit the job's model: ", fits.message()));
    }
    round = checkpoint->round;
    notice = absl::StrCat("resumed from the checkpoint of round ", round);
  } else {
    notice = "restarted from the beginning: the job had no checkpoint yet";
  }
  for (const auto& s : skipped) absl::StrAppend(&notice, "; ", s);
  if (!skipped.empty()) LOG(WARNING) << "job " << job_id_ << ": " << notice;
  // The history must match the model: rounds after the checkpoint are run
  // again and replace what was recorded of them.
  TWIST_RETURN_IF_ERROR(
      hooks_.truncate_rounds(job_id_, checkpoint ? round : -1));
  absl::MutexLock lock(&job_mu_);
  job_.set_round(round);
  job_.set_checkpoint_round(round);
  job_.set_notice(notice);
  LOG(INFO) << "job " << job_id_ << ": " << notice;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Checkpoint>> JobRunner::CheckpointToResume(
    int32_t recorded, int32_t rounds_done, std::vector<std::string>* skipped) {
  const std::string kept =
      absl::StrCat("; its ", rounds_done,
                   " recorded rounds are kept. Restore the folder and resubmit "
                   "the job, or start it again from the exported model");
  absl::StatusOr<std::optional<Checkpoint>> loaded =
      LoadLatestCheckpoint(options_.job_dir, skipped);
  if (!loaded.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot resume job ", job_id_, ": ", loaded.status().message(), kept));
  }
  // Whether the job should have a checkpoint: recorded, or (recorded by an
  // older coordinator, -1) implied by how far it got.
  const bool expected =
      recorded > 0 || (recorded < 0 && spec_.checkpoint_every() > 0 &&
                       rounds_done >= spec_.checkpoint_every());
  if (!*loaded && !skipped->empty()) {
    std::string why;
    for (const auto& s : *skipped) absl::StrAppend(&why, "; ", s);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot resume job ", job_id_, ": every checkpoint in ",
                     options_.job_dir, " is unusable", why, kept));
  }
  if (!*loaded && expected) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot resume job ", job_id_, ": its checkpoint",
        recorded > 0 ? absl::StrCat(" of round ", recorded) : "", " is not in ",
        options_.job_dir, " on host ", common::HostName(),
        " (the folder is missing or was emptied)", kept));
  }
  return *std::move(loaded);
}

absl::StatusOr<bool> JobRunner::WaitForWorkers(const std::atomic<bool>& cancel,
                                               const std::atomic<bool>& stop) {
  const int needed = spec_.min_workers();
  std::optional<absl::Time> all_refused_since;
  for (;;) {
    if (cancel.load() || stop.load()) return false;
    int live = 0, able = 0;
    for (const auto& w : registry_->LiveWorkers()) {
      ++live;
      if (refusers_.count(w.id()) == 0) ++able;
    }
    if (able >= needed) {
      SetState(twist::v1::JOB_STATE_RUNNING, "");
      return true;
    }
    if (live > 0 && able == 0 && !refusers_.empty()) {
      // Every live worker said it cannot train this job: wait a while for
      // another, then give up with their reasons.
      if (!all_refused_since) all_refused_since = absl::Now();
      if (absl::Now() - *all_refused_since >
          absl::Seconds(spec_.deadline_floor_s())) {
        return absl::FailedPreconditionError(absl::StrCat(
            "no live worker can train this job: ", DescribeRefusals()));
      }
    } else {
      all_refused_since.reset();
    }
    SetState(twist::v1::JOB_STATE_WAITING,
             absl::StrCat("waiting for ", needed, " live worker",
                          needed == 1 ? "" : "s", " that can train the job, ",
                          able, " of ", live, " live can",
                          refusers_.empty()
                              ? ""
                              : absl::StrCat(" (", DescribeRefusals(), ")")));
    absl::SleepFor(options_.poll_interval * 4);
  }
}

std::string JobRunner::DescribeRefusals() const {
  std::string out;
  for (const auto& [id, why] : refusers_) {
    absl::StrAppend(&out, out.empty() ? "" : "; ", why);
  }
  return out;
}

}  // namespace twist::coordinator
