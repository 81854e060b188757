// The job queue (coordinator/job_manager.h) in one process: a SQLite job
// store in a temporary folder, a worker registry, and worker threads that
// answer on the manager's round board (tests/support/in_process_cluster.h).
#include "coordinator/job_manager.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "common/job/job_states.h"
#include "coordinator/job_store.h"
#include "tests/support/in_process_cluster.h"
#include "tests/support/synthetic_dataset_test.h"
#include "tests/test_models.h"

namespace twist::coordinator {
namespace {

namespace fs = std::filesystem;
using twist::testing::InProcessWorkers;
using twist::testing::WorkerBehaviour;

class JobManagerTest : public twist::testing::SyntheticDatasetTest {
 protected:

  // A manager on a fresh state folder, with workers of `behaviours`.
  void Start(std::vector<WorkerBehaviour> behaviours) {
    state_dir_ = *dir_ + "/" +
                 ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(state_dir_);
    auto store = JobStore::Open(state_dir_ + "/jobs.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    WorkerRegistry::Options registry_options;
    registry_options.heartbeat_timeout_s = 1e9;  // threads do not heartbeat
    registry_ = std::make_unique<WorkerRegistry>(registry_options);
    JobManager::Options options;
    options.state_dir = state_dir_;
    options.incarnation = 1;
    options.poll_interval = absl::Milliseconds(5);
    manager_ = std::make_unique<JobManager>(options, store_.get(),
                                            registry_.get());
    ASSERT_TRUE(manager_->Start().ok());
    workers_ = std::make_unique<InProcessWorkers>(
        registry_.get(), manager_->board(), std::move(behaviours));
  }

  void TearDown() override {
    workers_.reset();  // before the registry and the board they use
    manager_.reset();
    registry_.reset();
    store_.reset();
  }

  // Waits (up to 60 s) until job `id` is in a state `done` accepts.
  twist::v1::Job WaitFor(int64_t id,
                         const std::function<bool(const twist::v1::Job&)>& done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    uint64_t seen = 0;
    for (;;) {
      auto job = manager_->Get(id, /*include_rounds=*/true);
      EXPECT_TRUE(job.ok()) << job.status();
      if (!job.ok() || done(*job) || absl::Now() > deadline) {
        return job.ok() ? *job : twist::v1::Job();
      }
      seen = manager_->WaitForChange(seen, absl::Milliseconds(100));
    }
  }

  twist::v1::Job WaitUntilFinished(int64_t id) {
    return WaitFor(id, [](const twist::v1::Job& j) {
      return common::IsFinished(j.state());
    });
  }

  std::string state_dir_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<WorkerRegistry> registry_;
  std::unique_ptr<JobManager> manager_;
  std::unique_ptr<InProcessWorkers> workers_;
};

TEST_F(JobManagerTest, SubmittedJobRunsToCompletion) {
  Start(std::vector<WorkerBehaviour>(2));
  twist::v1::JobSpec spec = twist::testing::TinyJobSpec(*data_);
  spec.set_min_workers(2);
  auto submitted = manager_->Submit(spec);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_EQ(submitted->state(), twist::v1::JOB_STATE_QUEUED);
  EXPECT_GT(submitted->parameters(), 0);
  EXPECT_EQ(submitted->spec().model().vocab_size(), 256);  // resolved

  const twist::v1::Job job = WaitUntilFinished(submitted->id());
  ASSERT_EQ(job.state(), twist::v1::JOB_STATE_COMPLETED) << job.reason();
  EXPECT_EQ(job.round(), 3);
  ASSERT_EQ(job.rounds_size(), 4);
  for (int i = 0; i < job.rounds_size(); ++i) {
    EXPECT_EQ(job.rounds(i).round(), i);
  }
  EXPECT_EQ(job.rounds(3).workers_size(), 2);
  EXPECT_TRUE(fs::exists(JobRunner::ModelPath(manager_->JobDir(job.id()))));

  auto rounds = manager_->RoundsAfter(job.id(), 1);
  ASSERT_TRUE(rounds.ok()) << rounds.status();
  EXPECT_EQ(rounds->size(), 2u);

  auto exported = manager_->Export(job.id(), /*keep_ratio=*/1.0, /*seed=*/1);
  ASSERT_TRUE(exported.ok()) << exported.status();

  // A finished job cannot be cancelled.
  auto cancelled = manager_->Cancel(job.id());
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kFailedPrecondition)
      << cancelled.status();
}

TEST_F(JobManagerTest, InvalidSpecIsRefusedAtSubmit) {
  Start(std::vector<WorkerBehaviour>(1));
  twist::v1::JobSpec spec = twist::testing::TinyJobSpec(*data_);
  spec.set_max_workers(1);
  spec.set_min_workers(3);  // more than max_workers
  auto submitted = manager_->Submit(spec);
  EXPECT_EQ(submitted.status().code(), absl::StatusCode::kInvalidArgument)
      << submitted.status();
  auto listed = manager_->List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_TRUE(listed->empty());
}

TEST_F(JobManagerTest, CancelsRunningAndQueuedJobs) {
  // A worker that never answers: the first job stays in its first round.
  WorkerBehaviour silent;
  silent.mode = WorkerBehaviour::Mode::kSilent;
  Start({silent});
  const twist::v1::JobSpec spec = twist::testing::TinyJobSpec(*data_);
  auto first = manager_->Submit(spec);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = manager_->Submit(spec);
  ASSERT_TRUE(second.ok()) << second.status();

  const twist::v1::Job running = WaitFor(first->id(), [](const auto& j) {
    return j.state() == twist::v1::JOB_STATE_RUNNING && j.rounds_size() > 0;
  });
  ASSERT_EQ(running.state(), twist::v1::JOB_STATE_RUNNING);

  auto queued = manager_->Cancel(second->id());
  ASSERT_TRUE(queued.ok()) << queued.status();
  EXPECT_EQ(queued->state(), twist::v1::JOB_STATE_CANCELLED);
  EXPECT_TRUE(absl::StrContains(queued->reason(), "before it started"))
      << queued->reason();

  auto cancelled = manager_->Cancel(first->id());
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), twist::v1::JOB_STATE_CANCELLED)
      << cancelled->reason();
  const twist::v1::Job first_job = WaitUntilFinished(first->id());
  EXPECT_EQ(first_job.state(), twist::v1::JOB_STATE_CANCELLED);
  EXPECT_GT(first_job.finished_at(), 0);

  // The second job never ran.
  auto second_job = manager_->Get(second->id(), true);
  ASSERT_TRUE(second_job.ok()) << second_job.status();
  EXPECT_EQ(second_job->state(), twist::v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(second_job->rounds_size(), 0);
  EXPECT_EQ(second_job->started_at(), 0);
}

// A coordinator restart: a job interrupted by Stop resumes when a new
// manager (a new incarnation) starts on the same state folder.
TEST_F(JobManagerTest, InterruptedJobResumesAfterARestart) {
  WorkerBehaviour unhurried;
  unhurried.delay_s = 0.05;  // time to stop the manager partway
  Start({unhurried});
  twist::v1::JobSpec spec = twist::testing::TinyJobSpec(*data_);
  spec.set_rounds(12);
  spec.set_checkpoint_every(2);
  auto submitted = manager_->Submit(spec);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const int64_t id = submitted->id();
  const twist::v1::Job partway = WaitFor(id, [](const twist::v1::Job& j) {
    return j.round() >= 2 || common::IsFinished(j.state());
  });
  ASSERT_FALSE(common::IsFinished(partway.state())) << "too fast to interrupt";
  manager_->Stop();
  workers_.reset();
  auto stopped = manager_->Get(id, false);
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_FALSE(common::IsFinished(stopped->state()));
  const int32_t checkpoint = stopped->checkpoint_round();
  EXPECT_GE(checkpoint, 2);

  JobManager::Options options;
  options.state_dir = state_dir_;
  options.incarnation = 2;
  options.poll_interval = absl::Milliseconds(5);
  manager_ = std::make_unique<JobManager>(options, store_.get(),
                                          registry_.get());
  ASSERT_TRUE(manager_->Start().ok());
  workers_ = std::make_unique<InProcessWorkers>(
      registry_.get(), manager_->board(), std::vector<WorkerBehaviour>(1));
  const twist::v1::Job job = WaitUntilFinished(id);
  ASSERT_EQ(job.state(), twist::v1::JOB_STATE_COMPLETED) << job.reason();
  EXPECT_TRUE(absl::StrContains(job.notice(), "resumed from the checkpoint"))
      << job.notice();
  ASSERT_EQ(job.rounds_size(), 13);
  for (int i = 0; i < job.rounds_size(); ++i) {
    EXPECT_EQ(job.rounds(i).round(), i);
  }
}

}  // namespace
}  // namespace twist::coordinator
