#include "tests/support/in_process_cluster.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/clock.h"
#include "common/base/status_macros.h"
#include "common/data/prepare.h"
#include "common/data/synthetic_corpus.h"
#include "coordinator/job_runner.h"
#include "coordinator/job_spec.h"
#include "worker/subnet_trainer.h"

namespace twist::testing {
namespace {

using coordinator::Assignment;
using coordinator::RoundCollector;

// The header of an answer to assignment `a` from worker `id`.
twist::v1::UpdateHeader AnswerHeader(const std::string& id,
                                     const twist::v1::AssignmentHeader& a) {
  twist::v1::UpdateHeader h;
  h.set_worker_id(id);
  h.set_incarnation(a.incarnation());
  h.set_job_id(a.job_id());
  h.set_round(a.round());
  h.set_slot(a.slot());
  return h;
}

}  // namespace

InProcessWorkers::InProcessWorkers(coordinator::WorkerRegistry* registry,
                                   coordinator::RoundBoard* board,
                                   std::vector<WorkerBehaviour> behaviours)
    : registry_(registry), board_(board), behaviours_(std::move(behaviours)) {
  for (size_t w = 0; w < behaviours_.size(); ++w) {
    twist::v1::JoinRequest join;
    join.set_name(behaviours_[w].name.empty() ? absl::StrCat("sim-", w)
                                              : behaviours_[w].name);
    join.set_capacity(behaviours_[w].capacity);
    ids_.push_back(registry_->Join(join, "in-process"));
  }
  {
    absl::MutexLock lock(&mu_);
    for (const auto& id : ids_) logs_.push_back(WorkerLog{id});
  }
  for (size_t w = 0; w < behaviours_.size(); ++w) {
    threads_.emplace_back([this, w] { Loop(static_cast<int>(w)); });
  }
}

InProcessWorkers::~InProcessWorkers() { Stop(); }

void InProcessWorkers::Stop() {
  if (done_.exchange(true)) return;
  for (auto& t : threads_) t.join();
  // As a worker daemon shutting down: a clean goodbye, so that a round loop
  // still running does not wait for them.
  for (const auto& id : ids_) registry_->Leave(id).IgnoreError();
}

void InProcessWorkers::IgnoreRoundsAfter(
    int32_t round, std::function<void(int32_t)> on_ignored) {
  absl::MutexLock lock(&mu_);
  ignore_after_ = round;
  on_ignored_ = std::move(on_ignored);
}

WorkerLog InProcessWorkers::log(int worker) {
  absl::MutexLock lock(&mu_);
  return logs_.at(worker);
}

void InProcessWorkers::Refuse(int worker, const twist::v1::AssignmentHeader& a,
                              const std::string& reason) {
  twist::v1::UpdateHeader h = AnswerHeader(ids_[worker], a);
  h.set_error(reason);
  absl::Status status;
  auto round = board_->Find(h.incarnation(), h.job_id(), h.round());
  if (round.ok()) {
    registry_->AnswerReceived(h.worker_id());
    status = (*round)->Refuse(
        h, absl::StrCat("worker could not train: ", h.error()));
  } else {
    status = round.status();
  }
  absl::MutexLock lock(&mu_);
  if (status.ok()) {
    ++logs_[worker].refused;
  } else {
    logs_[worker].late.push_back(status);
  }
}

void InProcessWorkers::Loop(int worker) {
  const WorkerBehaviour& b = behaviours_[worker];
  const std::string& id = ids_[worker];
  worker::SubnetTrainer::Options trainer_options;
  trainer_options.worker_name = b.name.empty() ? id : b.name;
  worker::SubnetTrainer trainer(trainer_options);
  int assignments = 0;
  while (!done_.load()) {
    auto taken = registry_->Take(id, absl::Milliseconds(20));
    if (!taken.ok() || *taken == nullptr) continue;
    const Assignment& a = **taken;
    bool ignored = false;
    {
      absl::MutexLock lock(&mu_);
      logs_[worker].taken.emplace_back(a.header.round(), a.header.slot());
      ignored = ignore_after_ > 0 && a.header.round() > ignore_after_;
      // Under the lock, so that it is not called once IgnoreRoundsAfter
      // replaced it.
      if (ignored && on_ignored_) on_ignored_(a.header.round());
    }
    if (ignored) continue;
    ++assignments;
    if (b.mode == WorkerBehaviour::Mode::kSilent ||
        assignments <= b.silent_first) {
      continue;
    }
    if (b.delay_s > 0) {
      const absl::Time until = absl::Now() + absl::Seconds(b.delay_s);
      while (!done_.load() && absl::Now() < until) {
        absl::SleepFor(absl::Milliseconds(5));
      }
      if (done_.load()) break;
    }
    if (b.mode == WorkerBehaviour::Mode::kRefuse) {
      Refuse(worker, a.header, b.refuse_reason);
      continue;
    }
    // As the worker daemon: an assignment it cannot train is refused with
    // the reason.
    const auto start = std::chrono::steady_clock::now();
    auto prepared = trainer.Prepare(a.header);
    if (!prepared.ok()) {
      Refuse(worker, a.header, std::string(prepared.status().message()));
      continue;
    }
    {
      torch::NoGradGuard no_grad;
      for (const auto& [name, t] : prepared->receive_into) {
        t.copy_(*a.tensors.Find(name));
      }
    }
    const double receive_s = common::SecondsSince(start);
    auto trained = trainer.Train(*prepared);
    if (!trained.ok()) {
      Refuse(worker, a.header, std::string(trained.status().message()));
      continue;
    }
    double compute_s = trained->result.compute_s;
    if (b.slowdown > 1 && a.header.round() >= b.slow_from_round) {
      const absl::Time until =
          absl::Now() + absl::Seconds((b.slowdown - 1) * compute_s);
      while (!done_.load() && absl::Now() < until) {
        absl::SleepFor(absl::Milliseconds(1));
      }
      compute_s *= b.slowdown;
    }
    twist::v1::UpdateHeader h = AnswerHeader(id, a.header);
    h.set_train_loss(trained->result.mean_loss);
    h.set_tokens(trained->result.tokens);
    h.set_compute_s(compute_s);
    h.set_receive_s(receive_s);
    h.set_parameters(trained->parameters);
    h.set_deltas(trained->deltas);
    absl::Status status;
    auto round = board_->Find(h.incarnation(), h.job_id(), h.round());
    if (round.ok()) {
      registry_->AnswerReceived(id);
      status = (*round)->Expect(h).status();
      if (status.ok()) {
        const int64_t bytes = trained->tensors.NumBytes();
        status = (*round)->Deliver(h, std::move(trained->tensors), bytes);
      }
    } else {
      status = round.status();
    }
    if (status.ok() && trained->residual != nullptr) {
      trainer.KeepResidual(std::move(trained->residual));
    }
    absl::MutexLock lock(&mu_);
    if (status.ok()) {
      ++logs_[worker].delivered;
    } else {
      logs_[worker].late.push_back(status);
    }
  }
}

namespace {

coordinator::WorkerRegistry::Options RegistryOptions() {
  coordinator::WorkerRegistry::Options options;
  options.heartbeat_timeout_s = 1e9;  // threads do not heartbeat
  return options;
}

}  // namespace

InProcessCluster::InProcessCluster(Options options)
    : options_(std::move(options)),
      registry_(RegistryOptions()),
      board_(options_.incarnation) {
  workers_ = std::make_unique<InProcessWorkers>(&registry_, &board_,
                                                options_.workers);
}

InProcessCluster::~InProcessCluster() { workers_->Stop(); }

twist::v1::Job InProcessCluster::NewJob(const twist::v1::JobSpec& resolved,
                                        int64_t id) {
  twist::v1::Job job;
  job.set_id(id);
  *job.mutable_spec() = resolved;
  job.set_state(twist::v1::JOB_STATE_QUEUED);
  return job;
}

JobRun InProcessCluster::Run(const twist::v1::Job& job,
                             const JobRunOptions& options,
                             std::vector<twist::v1::RoundRecord> history) {
  JobRun out;
  out.job = job;
  out.rounds = std::move(history);
  absl::Mutex mu;  // the hooks run on the runner's and the finisher's threads
  std::atomic<bool> stop{false};
  // With stop_after_round: that round is recorded, the next one dealt.
  bool stop_recorded = false, stop_dealt = false;
  const std::atomic<bool> no_cancel{false};
  const std::atomic<bool>& cancel =
      options.cancel != nullptr ? *options.cancel : no_cancel;

  // As the job store keeps them (coordinator/job_store.h).
  coordinator::JobRunner::Hooks hooks;
  hooks.job_changed = [&](const twist::v1::Job& j) {
    absl::MutexLock lock(&mu);
    out.job = j;
  };
  hooks.round_finished = [&](int64_t, const twist::v1::RoundRecord& r) {
    {
      absl::MutexLock lock(&mu);
      auto& rounds = out.rounds;
      rounds.erase(std::remove_if(rounds.begin(), rounds.end(),
                                  [&](const twist::v1::RoundRecord& old) {
                                    return old.round() >= r.round();
                                  }),
                   rounds.end());
      rounds.push_back(r);
      out.job.set_round(r.round());
    }
    if (options.stop_after_round > 0 && r.round() >= options.stop_after_round) {
      absl::MutexLock lock(&mu);
      stop_recorded = true;
      if (stop_dealt || options.stop_at_once) stop.store(true);
    }
  };
  hooks.truncate_rounds = [&](int64_t, int32_t keep_up_to) {
    absl::MutexLock lock(&mu);
    auto& rounds = out.rounds;
    rounds.erase(std::remove_if(rounds.begin(), rounds.end(),
                                [&](const twist::v1::RoundRecord& old) {
                                  return old.round() > keep_up_to;
                                }),
                 rounds.end());
    out.job.set_round(std::max(keep_up_to, 0));
    return absl::OkStatus();
  };

  coordinator::JobRunner::Options runner_options;
  runner_options.incarnation = options_.incarnation;
  runner_options.job_dir = options.work_dir;
  runner_options.checkpoints_kept = options.checkpoints_kept;
  runner_options.poll_interval = options_.poll_interval;
  workers_->IgnoreRoundsAfter(options.stop_after_round, [&](int32_t) {
    absl::MutexLock lock(&mu);
    stop_dealt = true;
    if (stop_recorded) stop.store(true);
  });
  const auto start = std::chrono::steady_clock::now();
  absl::Status status;
  {
    coordinator::JobRunner runner(job, &registry_, &board_, runner_options,
                                  std::move(hooks));
    status = runner.Run(cancel, stop);
  }
  out.wall_s = common::SecondsSince(start);
  workers_->IgnoreRoundsAfter(0);  // before `mu` and `stop` go
  absl::MutexLock lock(&mu);
  out.status = status;
  out.model_path = coordinator::JobRunner::ModelPath(options.work_dir);
  return out;
}

absl::StatusOr<std::string> PrepareSyntheticDatasetInProcess(
    const std::string& dir, size_t bytes, uint64_t seed) {
  const std::string text = dir + "/corpus.txt";
  {
    std::ofstream out(text);
    out << common::GenerateSyntheticCorpus(seed, bytes);
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", text));
  }
  common::PrepareOptions options;
  options.input = text;
  options.output_dir = dir + "/data";
  TWIST_RETURN_IF_ERROR(common::PrepareDataset(options).status());
  return options.output_dir;
}

twist::v1::JobSpec TinyJobSpec(const std::string& data_path) {
  twist::v1::JobSpec spec;
  spec.set_name("tiny");
  spec.mutable_model()->set_n_layer(1);
  spec.mutable_model()->set_n_head(2);
  spec.mutable_model()->set_n_embd(32);
  spec.mutable_model()->set_block_size(32);
  spec.mutable_data()->set_path(data_path);
  spec.set_rounds(3);
  spec.set_local_steps(2);
  spec.set_batch_size(4);
  spec.set_seed(7);
  spec.set_eval_every(1);
  spec.set_eval_batches(2);
  spec.set_checkpoint_every(-1);
  spec.set_min_workers(1);
  spec.mutable_optimizer()->set_learning_rate(3e-3);
  return spec;
}

absl::StatusOr<InProcessJob> RunJobInProcess(const twist::v1::JobSpec& input,
                                             int workers,
                                             const std::string& work_dir) {
  InProcessJob out;
  TWIST_ASSIGN_OR_RETURN(out.spec, coordinator::ResolveJobSpec(input));
  InProcessCluster::Options options;
  options.workers.resize(workers);
  InProcessCluster cluster(std::move(options));
  JobRunOptions run_options;
  run_options.work_dir = work_dir;
  JobRun run = cluster.Run(InProcessCluster::NewJob(out.spec), run_options);
  TWIST_RETURN_IF_ERROR(run.status);
  out.rounds = std::move(run.rounds);
  out.model_path = std::move(run.model_path);
  out.wall_s = run.wall_s;
  return out;
}

}  // namespace twist::testing
