#include "bench/in_process_cluster.h"

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "bench/bench_util.h"
#include "common/rpc/rpc_util.h"
#include "common/base/status_macros.h"
#include "coordinator/job_runner.h"
#include "coordinator/job_spec.h"
#include "coordinator/worker_registry.h"
#include "worker/subnet_trainer.h"

namespace twist::bench {

absl::StatusOr<InProcessJob> RunJobInProcess(const twist::v1::JobSpec& input,
                                             int workers,
                                             const std::string& work_dir) {
  InProcessJob out;
  TWIST_ASSIGN_OR_RETURN(out.spec, coordinator::ResolveJobSpec(input));
  coordinator::WorkerRegistry::Options registry_options;
  registry_options.heartbeat_timeout_s = 1e9;  // threads do not heartbeat
  coordinator::WorkerRegistry registry(registry_options);

  coordinator::RoundBoard board(/*incarnation=*/1);
  absl::Mutex mu;
  coordinator::JobRunner::Hooks hooks;
  hooks.job_changed = [](const twist::v1::Job&) {};
  hooks.round_finished = [&](int64_t, const twist::v1::RoundRecord& r) {
    absl::MutexLock lock(&mu);
    out.rounds.push_back(r);
  };
  hooks.truncate_rounds = [](int64_t, int32_t) { return absl::OkStatus(); };

  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  std::vector<std::string> ids;
  for (int w = 0; w < workers; ++w) {
    twist::v1::JoinRequest join;
    join.set_name(absl::StrCat("sim-", w));
    join.set_capacity(1.0);
    ids.push_back(registry.Join(join, "in-process"));
  }
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, id = ids[w]] {
      worker::SubnetTrainer trainer(worker::SubnetTrainer::Options{});
      while (!done.load()) {
        auto taken = registry.Take(id, absl::Milliseconds(50));
        if (!taken.ok() || *taken == nullptr) continue;
        const coordinator::Assignment& a = **taken;
        const double start = Now();
        auto prepared = trainer.Prepare(a.header);
        if (!prepared.ok()) continue;
        {
          torch::NoGradGuard no_grad;
          for (const auto& [name, t] : prepared->receive_into)
            t.copy_(*a.tensors.Find(name));
        }
        const double receive_s = Now() - start;
        auto trained = trainer.Train(*prepared);
        if (!trained.ok()) continue;
        twist::v1::UpdateHeader h;
        h.set_worker_id(id);
        h.set_incarnation(a.header.incarnation());
        h.set_job_id(a.header.job_id());
        h.set_round(a.header.round());
        h.set_slot(a.header.slot());
        h.set_train_loss(trained->result.mean_loss);
        h.set_tokens(trained->result.tokens);
        h.set_compute_s(trained->result.compute_s);
        h.set_receive_s(receive_s);
        h.set_parameters(trained->parameters);
        h.set_deltas(trained->deltas);
        auto round = board.Find(h.incarnation(), h.job_id(), h.round());
        if (!round.ok() || !(*round)->Expect(h).ok()) continue;
        const int64_t bytes = trained->tensors.NumBytes();
        (*round)->Deliver(h, std::move(trained->tensors), bytes).IgnoreError();
      }
    });
  }

  twist::v1::Job job;
  job.set_id(1);
  *job.mutable_spec() = out.spec;
  job.set_state(twist::v1::JOB_STATE_QUEUED);
  coordinator::JobRunner::Options options;
  options.incarnation = 1;
  options.job_dir = work_dir;
  options.poll_interval = absl::Milliseconds(5);
  coordinator::JobRunner runner(job, &registry, &board, options, hooks);
  std::atomic<bool> cancel{false}, stop{false};
  const double start = Now();
  absl::Status status = runner.Run(cancel, stop);
  out.wall_s = Now() - start;
  done.store(true);
  for (auto& t : threads) t.join();
  TWIST_RETURN_IF_ERROR(status);
  out.model_path = coordinator::JobRunner::ModelPath(work_dir);
  return out;
}

}  // namespace twist::bench
