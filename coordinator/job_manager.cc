#include "coordinator/job_manager.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/base/clock.h"
#include "common/base/status_macros.h"
#include "common/ist/model_export.h"
#include "coordinator/job_spec.h"
#include "glog/logging.h"

namespace twist::coordinator {

using common::NowSeconds;

JobManager::JobManager(Options options, JobStore* store,
                       WorkerRegistry* registry)
    : options_(std::move(options)),
      store_(store),
      registry_(registry),
      board_(options_.incarnation) {}

JobManager::~JobManager() { Stop(); }

std::string JobManager::JobDir(int64_t job_id) const {
  return absl::StrCat(options_.state_dir, "/jobs/", job_id);
}

absl::Status JobManager::Start() {
  TWIST_ASSIGN_OR_RETURN(std::vector<twist::v1::Job> unfinished,
                         store_->UnfinishedJobs());
  {
    absl::MutexLock lock(&mu_);
    for (const auto& job : unfinished) queue_.push_back(job.id());
  }
  if (!unfinished.empty()) {
    LOG(INFO) << unfinished.size()
              << " unfinished job(s) queued from the state directory";
  }
  scheduler_ = std::thread([this] { SchedulerLoop(); });
  return absl::OkStatus();
}

void JobManager::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  stop_.store(true);
  if (scheduler_.joinable()) scheduler_.join();
}

void JobManager::Changed() {
  absl::MutexLock lock(&mu_);
  ++version_;
}

uint64_t JobManager::version() {
  absl::MutexLock lock(&mu_);
  return version_;
}

uint64_t JobManager::WaitForChange(uint64_t seen, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return version_ > seen || stopping_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
  return version_;
}

absl::StatusOr<twist::v1::Job> JobManager::Submit(twist::v1::JobSpec spec) {
  TWIST_ASSIGN_OR_RETURN(twist::v1::JobSpec resolved,
                         ResolveJobSpec(std::move(spec)));
  TWIST_ASSIGN_OR_RETURN(int64_t id, store_->CreateJob(resolved, NowSeconds()));
  TWIST_ASSIGN_OR_RETURN(twist::v1::Job job,
                         store_->GetJob(id, /*include_rounds=*/false));
  job.set_parameters(ModelConfigOf(resolved).NumParameters());
  TWIST_RETURN_IF_ERROR(store_->UpdateJob(job));
  {
    absl::MutexLock lock(&mu_);
    queue_.push_back(id);
    ++version_;
  }
  LOG(INFO) << "job " << id << " (" << resolved.name() << ") queued";
  return job;
}

absl::StatusOr<twist::v1::Job> JobManager::Get(int64_t job_id,
                                               bool include_rounds) {
  return store_->GetJob(job_id, include_rounds);
}

absl::StatusOr<std::vector<twist::v1::RoundRecord>> JobManager::RoundsAfter(
    int64_t job_id, int32_t after_round) {
  return store_->GetRounds(job_id, after_round);
}

absl::StatusOr<std::vector<twist::v1::Job>> JobManager::List() {
  return store_->ListJobs();
}

absl::StatusOr<twist::v1::Job> JobManager::Cancel(int64_t job_id) {
  TWIST_ASSIGN_OR_RETURN(twist::v1::Job job, store_->GetJob(job_id, false));
  if (IsFinished(job.state())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " already ended (", JobStateName(job.state()),
        "): only queued, waiting or running jobs can be cancelled"));
  }
  bool running = false;
  {
    absl::MutexLock lock(&mu_);
    running = running_id_ == job_id;
    if (running) {
      cancel_running_.store(true);
    } else {
      for (auto it = queue_.begin(); it != queue_.end(); ++it) {
        if (*it == job_id) {
          queue_.erase(it);
          break;
        }
      }
    }
  }
  if (!running) {
    job.set_state(twist::v1::JOB_STATE_CANCELLED);
    job.set_reason("cancelled by a client before it started");
    job.set_finished_at(NowSeconds());
    TWIST_RETURN_IF_ERROR(store_->UpdateJob(job));
    Changed();
    return job;
  }
  // The runner notices within a poll interval and records the cancellation.
  for (int i = 0; i < 200; ++i) {
    TWIST_ASSIGN_OR_RETURN(job, store_->GetJob(job_id, false));
    if (IsFinished(job.state())) break;
    absl::SleepFor(options_.poll_interval);
  }
  return job;
}

void JobManager::SchedulerLoop() {
  for (;;) {
    int64_t id = 0;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      id = queue_.front();
      queue_.pop_front();
      running_id_ = id;
    }
    cancel_running_.store(false);
    absl::StatusOr<twist::v1::Job> job = store_->GetJob(id, false);
    if (!job.ok()) {
      LOG(ERROR) << "cannot load job " << id << ": " << job.status();
      continue;
    }
    JobRunner::Hooks hooks;
    hooks.job_changed = [this](const twist::v1::Job& j) {
      if (absl::Status s = store_->UpdateJob(j); !s.ok()) {
        LOG(ERROR) << "cannot record job " << j.id() << ": " << s;
      }
      Changed();
    };
    hooks.round_finished = [this](int64_t job_id,
                                  const twist::v1::RoundRecord& r) {
      if (absl::Status s = store_->RecordRound(job_id, r); !s.ok()) {
        LOG(ERROR) << "cannot record round " << r.round() << " of job "
                   << job_id << ": " << s;
      }
      Changed();
    };
    hooks.truncate_rounds = [this](int64_t job_id, int32_t keep_up_to) {
      absl::Status s = store_->TruncateRounds(job_id, keep_up_to);
      Changed();
      return s;
    };
    JobRunner::Options runner_options;
    runner_options.incarnation = options_.incarnation;
    runner_options.job_dir = JobDir(id);
    runner_options.poll_interval = options_.poll_interval;
    auto runner = std::make_shared<JobRunner>(*job, registry_, &board_,
                                              runner_options, std::move(hooks));
    {
      absl::MutexLock lock(&mu_);
      runner_ = runner;
    }
    LOG(INFO) << "job " << id << " starting";
    runner->Run(cancel_running_, stop_)
        .IgnoreError();  // the runner records failures
    {
      absl::MutexLock lock(&mu_);
      runner_ = nullptr;
      running_id_ = 0;
      ++version_;
    }
  }
}

absl::StatusOr<ExportedModel> JobManager::Export(int64_t job_id,
                                                 double keep_ratio,
                                                 uint64_t seed,
                                                 bool shift_correction) {
  TWIST_RETURN_IF_ERROR(common::CheckExportKeepRatio(keep_ratio));
  TWIST_ASSIGN_OR_RETURN(twist::v1::Job job, store_->GetJob(job_id, false));
  // The running job's model is copied without holding mu_ (the copy may take
  // a while, and every other call of the manager needs mu_).
  std::shared_ptr<JobRunner> runner;
  {
    absl::MutexLock lock(&mu_);
    if (running_id_ == job_id) runner = runner_;
  }
  common::NamedTensors params;
  if (runner != nullptr) params = runner->SnapshotParameters();
  if (params.empty()) {
    const std::string path = JobRunner::ModelPath(JobDir(job_id));
    if (!std::filesystem::exists(path)) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job_id, " (", JobStateName(job.state()),
                       ") has no model to export yet: export works once the "
                       "job runs or has completed"));
    }
    TWIST_ASSIGN_OR_RETURN(common::SafetensorsContents contents,
                           common::ReadSafetensors(path));
    params = std::move(contents.tensors);
  }
  common::ModelExportOptions options;
  options.keep_ratio = keep_ratio;
  options.seed = seed;
  options.scaling = ScalingOf(job.spec());
  options.shift_correction =
      shift_correction || job.spec().scaling() == twist::v1::SCALING_CORRECTION;
  options.calibration_data = job.spec().data().path();
  options.calibration_batch_size = job.spec().batch_size();
  options.metadata = {{"twist.job_id", absl::StrCat(job_id)},
                      {"twist.round", absl::StrCat(job.round())}};
  if (!job.spec().data().tokenizer().empty()) {
    options.metadata["twist.tokenizer"] = job.spec().data().tokenizer();
  }
  return common::ExportModel(ModelConfigOf(job.spec()), params, options);
}

}  // namespace twist::coordinator
