// The round loop (coordinator/job_runner.h) in one process: jobs run by a
// real JobRunner with worker threads (tests/support/in_process_cluster.h) that
// train, refuse, straggle or never answer, on a model small enough that a
// job takes well under a second.
#include "coordinator/job_runner.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "coordinator/checkpoint.h"
#include "common/job/job_states.h"
#include "coordinator/job_spec.h"
#include "common/model/model_io.h"
#include "common/model/safetensors.h"
#include "tests/support/in_process_cluster.h"
#include "tests/support/synthetic_dataset_test.h"
#include "tests/test_models.h"

namespace twist {
namespace {

using coordinator::JobRunner;
using testing::InProcessCluster;
using testing::JobRun;
using testing::JobRunOptions;
using testing::WorkerBehaviour;
using Mode = WorkerBehaviour::Mode;

namespace fs = std::filesystem;

class JobRunnerTest : public twist::testing::SyntheticDatasetTest {
 protected:

  // A folder of its own for each job of a test.
  std::string JobDir(const std::string& name) {
    const std::string dir = *dir_ + "/" +
                            ::testing::UnitTest::GetInstance()
                                ->current_test_info()
                                ->name() +
                            "-" + name;
    fs::remove_all(dir);
    return dir;
  }

  static twist::v1::JobSpec Spec() { return testing::TinyJobSpec(*data_); }

  static twist::v1::Job NewJob(const twist::v1::JobSpec& spec) {
    auto resolved = coordinator::ResolveJobSpec(spec);
    EXPECT_TRUE(resolved.ok()) << resolved.status();
    return InProcessCluster::NewJob(*resolved);
  }

  static JobRun RunJob(const twist::v1::JobSpec& spec,
                       std::vector<WorkerBehaviour> workers,
                       const std::string& dir) {
    InProcessCluster::Options options;
    options.workers = std::move(workers);
    InProcessCluster cluster(options);
    JobRunOptions run;
    run.work_dir = dir;
    return cluster.Run(NewJob(spec), run);
  }

  // Runs `job` on `workers` plain workers until it has recorded `round`,
  // then stops the coordinator (at once after that round's merge when
  // `at_once`).
  static JobRun RunUntilStopped(const twist::v1::Job& job, int workers,
                                const std::string& dir, int32_t round,
                                bool at_once = false) {
    InProcessCluster::Options options;
    options.workers.resize(workers);
    InProcessCluster cluster(options);
    JobRunOptions run;
    run.work_dir = dir;
    run.stop_after_round = round;
    run.stop_at_once = at_once;
    return cluster.Run(job, run);
  }

  // The model file's tensors.
  static common::NamedTensors ModelTensors(const std::string& path) {
    auto contents = common::ReadSafetensors(path);
    EXPECT_TRUE(contents.ok()) << contents.status();
    return contents.ok() ? std::move(contents->tensors)
                         : common::NamedTensors();
  }

  // Whether two model files hold the same tensors, bit for bit.
  static ::testing::AssertionResult SameModel(const std::string& a,
                                              const std::string& b) {
    const common::NamedTensors x = ModelTensors(a), y = ModelTensors(b);
    if (x.empty() || x.size() != y.size()) {
      return ::testing::AssertionFailure()
             << x.size() << " tensors against " << y.size();
    }
    for (const auto& [name, t] : x) {
      const at::Tensor* u = y.Find(name);
      if (u == nullptr) return ::testing::AssertionFailure() << name << " missing";
      if (!torch::equal(t, *u)) {
        return ::testing::AssertionFailure()
               << name << " differs (max |diff| "
               << (t - *u).abs().max().item<double>() << ")";
      }
    }
    return ::testing::AssertionSuccess();
  }

  // The record's rounds, in order.
  static std::vector<int32_t> Rounds(const JobRun& run) {
    std::vector<int32_t> out;
    for (const auto& r : run.rounds) out.push_back(r.round());
    return out;
  }

};


TEST_F(JobRunnerTest, TwoWorkersCompleteRecordEveryRoundAndWriteAModel) {
  twist::v1::JobSpec spec = Spec();
  spec.set_min_workers(2);
  InProcessCluster::Options options;
  options.workers.resize(2);
  InProcessCluster cluster(options);
  JobRunOptions run_options;
  run_options.work_dir = JobDir("job");
  const JobRun run = cluster.Run(NewJob(spec), run_options);

  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.job.state(), twist::v1::JOB_STATE_COMPLETED) << run.job.reason();
  EXPECT_EQ(run.job.round(), 3);
  EXPECT_GT(run.job.started_at(), 0);
  EXPECT_GT(run.job.finished_at(), 0);
  ASSERT_EQ(Rounds(run), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_TRUE(run.rounds[0].has_val_loss());
  for (size_t i = 1; i < run.rounds.size(); ++i) {
    const twist::v1::RoundRecord& r = run.rounds[i];
    ASSERT_EQ(r.workers_size(), 2) << "round " << r.round();
    for (const auto& w : r.workers()) {
      EXPECT_TRUE(w.accepted()) << "round " << r.round() << ": " << w.reason();
      EXPECT_GT(w.tokens(), 0);
      // Computing is part of a worker's cycle; receiving, sending, waiting
      // for the other worker and the merge are the rest. Its first cycle is
      // the round.
      EXPECT_GT(w.idle_fraction(), 0) << "round " << r.round();
      EXPECT_LT(w.idle_fraction(), 1) << "round " << r.round();
      if (r.round() == 1) {
        EXPECT_NEAR(w.idle_fraction(), 1 - w.compute_s() / r.duration_s(),
                    1e-9);
      }
    }
    EXPECT_TRUE(r.has_val_loss()) << "round " << r.round();
    EXPECT_TRUE(std::isfinite(r.train_loss()));
    EXPECT_GT(r.bytes_sent(), 0);
    EXPECT_GT(r.bytes_received(), 0);
  }
  for (int w = 0; w < 2; ++w) {
    EXPECT_EQ(cluster.workers().log(w).delivered, 3) << "worker " << w;
  }

  ASSERT_EQ(run.model_path, JobRunner::ModelPath(run_options.work_dir));
  auto model = common::LoadModel(run.model_path);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->config().n_layer, 1);
  EXPECT_EQ((*model)->config().n_embd, 32);
  // Trained: no longer the seeded initialisation.
  common::Gpt initial(common::ModelConfigOf(run.job.spec()));
  initial->InitWeights(run.job.spec().seed());
  const common::NamedTensors start = common::ParameterTensors(*initial);
  const common::NamedTensors end = common::ParameterTensors(**model);
  int changed = 0;
  for (const auto& [name, t] : end) {
    const at::Tensor* s = start.Find(name);
    ASSERT_NE(s, nullptr) << name;
    ASSERT_TRUE(t.isfinite().all().item<bool>()) << name;
    if (!torch::equal(t, *s)) ++changed;
  }
  EXPECT_EQ(changed, static_cast<int>(end.size()));
}

// Every compression mode trains through a real JobRunner and SubnetTrainers
// (bfloat16 transport, rolling deal): the job completes, its validation loss
// ends near uncompressed training's, a compressed round's updates take a
// fraction of the bytes, and the last round (which flushes the workers'
// residuals) travels whole. Assignments after the first are changes to the
// units the workers hold (resident units) and weights of the units that
// move, and take a fraction of the bytes too.
TEST_F(JobRunnerTest, EveryCompressionModeTrainsOnFewerBytes) {
  struct Result {
    double start_loss = 0;
    double val_loss = 0;
    int64_t first_round_bytes = 0;
    int64_t last_round_bytes = 0;
    int64_t first_round_sent = 0;
    int64_t later_round_sent = 0;
  };
  std::map<twist::v1::Compression, Result> results;
  for (twist::v1::Compression c :
       {twist::v1::COMPRESSION_NONE, twist::v1::COMPRESSION_INT8,
        twist::v1::COMPRESSION_INT4, twist::v1::COMPRESSION_TOPK}) {
    twist::v1::JobSpec spec = Spec();
    spec.mutable_model()->set_n_head(4);
    spec.set_min_workers(2);
    spec.set_deal(twist::v1::DEAL_ROLLING);
    // Plain merging: in 4 rounds of a tiny model, the outer momentum would
    // carry top-k's held-back entries into a lag this comparison is not about.
    spec.set_outer_learning_rate(1);
    spec.set_outer_momentum(0);
    spec.set_transport_dtype(twist::v1::TRANSPORT_DTYPE_BFLOAT16);
    spec.set_compression(c);
    spec.set_rounds(4);
    const JobRun run = RunJob(spec, std::vector<WorkerBehaviour>(2),
                              JobDir(twist::v1::Compression_Name(c)));
    ASSERT_TRUE(run.status.ok()) << run.status;
    ASSERT_EQ(run.job.state(), twist::v1::JOB_STATE_COMPLETED)
        << twist::v1::Compression_Name(c) << ": " << run.job.reason();
    ASSERT_EQ(run.rounds.size(), 5u);
    for (size_t i = 1; i < run.rounds.size(); ++i) {
      for (const auto& w : run.rounds[i].workers()) {
        EXPECT_TRUE(w.accepted()) << w.reason();
      }
    }
    results[c] = {run.rounds[0].val_loss(), run.rounds.back().val_loss(),
                  run.rounds[1].bytes_received(),
                  run.rounds.back().bytes_received(),
                  run.rounds[1].bytes_sent(), run.rounds[3].bytes_sent()};
  }
  const Result& none = results[twist::v1::COMPRESSION_NONE];
  EXPECT_LT(none.val_loss, none.start_loss);
  for (const auto& [c, r] : results) {
    EXPECT_NEAR(r.val_loss, none.val_loss, 0.05)
        << twist::v1::Compression_Name(c);
    EXPECT_EQ(r.last_round_bytes, none.last_round_bytes)
        << twist::v1::Compression_Name(c);
  }
  // bfloat16 deltas against codes plus the leftovers of the leaving head
  // (half of what each worker holds of the attention in this 4-head model).
  EXPECT_LT(results[twist::v1::COMPRESSION_INT8].first_round_bytes,
            0.65 * none.first_round_bytes);
  EXPECT_LT(results[twist::v1::COMPRESSION_INT4].first_round_bytes,
            0.45 * none.first_round_bytes);
  EXPECT_LT(results[twist::v1::COMPRESSION_TOPK].first_round_bytes,
            0.15 * none.first_round_bytes);
  // The first round deals weights in every mode (headers differ a little).
  for (const auto& [c, r] : results) {
    EXPECT_NEAR(r.first_round_sent, none.first_round_sent,
                0.02 * none.first_round_sent)
        << twist::v1::Compression_Name(c);
  }
  EXPECT_LT(results[twist::v1::COMPRESSION_INT8].later_round_sent,
            0.65 * none.later_round_sent);
  // Top-k jobs send their changes in int4 (ChangeEncodingOf).
  for (twist::v1::Compression c :
       {twist::v1::COMPRESSION_INT4, twist::v1::COMPRESSION_TOPK}) {
    EXPECT_LT(results[c].later_round_sent, 0.45 * none.later_round_sent)
        << twist::v1::Compression_Name(c);
  }
}

TEST_F(JobRunnerTest, RefusingWorkerIsNotDealtTheJobAgain) {
  InProcessCluster::Options options;
  options.workers.resize(2);
  options.workers[0].mode = Mode::kRefuse;
  options.workers[0].refuse_reason = "no dataset here";
  InProcessCluster cluster(options);
  JobRunOptions run_options;
  run_options.work_dir = JobDir("job");
  const JobRun run = cluster.Run(NewJob(Spec()), run_options);

  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_TRUE(run.completed()) << run.job.reason();
  ASSERT_EQ(Rounds(run), (std::vector<int32_t>{0, 1, 2, 3}));
  const testing::WorkerLog refuser = cluster.workers().log(0);
  EXPECT_EQ(refuser.taken.size(), 1u);
  EXPECT_EQ(refuser.refused, 1);
  EXPECT_EQ(cluster.workers().log(1).delivered, 3);

  // Round 1 records the refusal with its reason; later rounds leave the
  // refuser out.
  const twist::v1::RoundRecord& first = run.rounds[1];
  ASSERT_EQ(first.workers_size(), 2);
  bool seen = false;
  for (const auto& w : first.workers()) {
    if (w.worker_id() != refuser.id) continue;
    seen = true;
    EXPECT_FALSE(w.accepted());
    EXPECT_TRUE(absl::StrContains(w.reason(), "no dataset here")) << w.reason();
  }
  EXPECT_TRUE(seen);
  for (size_t i = 2; i < run.rounds.size(); ++i) {
    ASSERT_EQ(run.rounds[i].workers_size(), 1) << "round " << i;
    EXPECT_NE(run.rounds[i].workers(0).worker_id(), refuser.id);
  }
}

TEST_F(JobRunnerTest, JobEveryWorkerRefusesFailsWithTheirReasons) {
  twist::v1::JobSpec spec = Spec();
  spec.set_deadline_floor_s(0.2);  // how long it waits for an able worker
  InProcessCluster::Options options;
  options.workers.resize(2);
  options.workers[0].mode = Mode::kRefuse;
  options.workers[0].refuse_reason = "dataset hash differs";
  options.workers[1].mode = Mode::kRefuse;
  options.workers[1].refuse_reason = "out of memory";
  InProcessCluster cluster(options);
  JobRunOptions run_options;
  run_options.work_dir = JobDir("job");
  const JobRun run = cluster.Run(NewJob(spec), run_options);

  EXPECT_EQ(run.status.code(), absl::StatusCode::kFailedPrecondition)
      << run.status;
  EXPECT_EQ(run.job.state(), twist::v1::JOB_STATE_FAILED);
  for (const std::string& reason : {"dataset hash differs", "out of memory"}) {
    EXPECT_TRUE(absl::StrContains(run.status.message(), reason)) << run.status;
    EXPECT_TRUE(absl::StrContains(run.job.reason(), reason)) << run.job.reason();
  }
  EXPECT_EQ(Rounds(run), (std::vector<int32_t>{0}));
  for (int w = 0; w < 2; ++w) {
    EXPECT_EQ(cluster.workers().log(w).taken.size(), 1u) << "worker " << w;
  }
  EXPECT_FALSE(fs::exists(run.model_path));
}

TEST_F(JobRunnerTest, SlowWorkerPastTheDeadlineIsDroppedFromTheRound) {
  twist::v1::JobSpec spec = Spec();
  spec.set_rounds(2);
  spec.set_min_workers(2);
  spec.set_round_deadline_s(1.0);
  spec.set_deadline_floor_s(0.3);
  spec.set_deadline_factor(3);
  InProcessCluster::Options options;
  options.workers.resize(2);
  options.workers[1].delay_s = 5;
  InProcessCluster cluster(options);
  JobRunOptions run_options;
  run_options.work_dir = JobDir("job");
  const JobRun run = cluster.Run(NewJob(spec), run_options);

  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_TRUE(run.completed()) << run.job.reason();
  ASSERT_EQ(Rounds(run), (std::vector<int32_t>{0, 1, 2}));
  const std::string slow = cluster.workers().ids()[1];
  // The first round waits the whole round deadline; later ones less (a
  // multiple of the fast worker's time, at least the floor).
  EXPECT_DOUBLE_EQ(run.rounds[1].deadline_s(), 1.0);
  EXPECT_GE(run.rounds[2].deadline_s(), 0.3);
  EXPECT_LE(run.rounds[2].deadline_s(), 1.0);
  for (size_t i = 1; i < run.rounds.size(); ++i) {
    const twist::v1::RoundRecord& r = run.rounds[i];
    ASSERT_EQ(r.workers_size(), 2) << "round " << i;
    for (const auto& w : r.workers()) {
      if (w.worker_id() == slow) {
        EXPECT_FALSE(w.accepted()) << "round " << i;
        EXPECT_TRUE(absl::StartsWith(w.reason(), "straggler: round deadline"))
            << w.reason();
      } else {
        EXPECT_TRUE(w.accepted()) << "round " << i << ": " << w.reason();
      }
    }
  }
  EXPECT_LT(run.wall_s, 4.0);  // never waited for the straggler
  EXPECT_EQ(cluster.workers().log(1).delivered, 0);
}

TEST_F(JobRunnerTest, EmptyRoundIsDealtAgain) {
  twist::v1::JobSpec spec = Spec();
  spec.set_rounds(2);
  spec.set_round_deadline_s(1.0);  // time enough to train, on a busy machine
  spec.set_deadline_floor_s(1.0);
  InProcessCluster::Options options;
  options.workers.resize(1);
  options.workers[0].silent_first = 1;  // its first assignment goes nowhere
  InProcessCluster cluster(options);
  JobRunOptions run_options;
  run_options.work_dir = JobDir("job");
  const JobRun run = cluster.Run(NewJob(spec), run_options);

  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_TRUE(run.completed()) << run.job.reason();
  EXPECT_EQ(Rounds(run), (std::vector<int32_t>{0, 1, 2}));
  const testing::WorkerLog log = cluster.workers().log(0);
  ASSERT_EQ(log.taken.size(), 3u);
  EXPECT_EQ(log.taken[0].first, 1);
  EXPECT_EQ(log.taken[1].first, 1);  // round 1 again
  EXPECT_EQ(log.taken[2].first, 2);
}

TEST_F(JobRunnerTest, JobFailsAfterMaxEmptyAttempts) {
  twist::v1::JobSpec spec = Spec();
  spec.set_round_deadline_s(0.3);
  spec.set_deadline_floor_s(0.1);
  InProcessCluster::Options options;
  options.workers.resize(1);
  options.workers[0].mode = Mode::kSilent;
  InProcessCluster cluster(options);
  JobRunOptions run_options;
  run_options.work_dir = JobDir("job");
  const JobRun run = cluster.Run(NewJob(spec), run_options);

  EXPECT_EQ(run.status.code(), absl::StatusCode::kFailedPrecondition)
      << run.status;
  EXPECT_TRUE(absl::StrContains(
      run.status.message(),
      absl::StrCat("round 1 in ", JobRunner::kMaxEmptyAttempts, " attempts")))
      << run.status;
  EXPECT_TRUE(absl::StrContains(run.status.message(), "no update arrived"))
      << run.status;
  EXPECT_EQ(run.job.state(), twist::v1::JOB_STATE_FAILED);
  EXPECT_EQ(run.job.reason(), run.status.message());
  EXPECT_EQ(Rounds(run), (std::vector<int32_t>{0}));
  const testing::WorkerLog log = cluster.workers().log(0);
  ASSERT_EQ(log.taken.size(),
            static_cast<size_t>(JobRunner::kMaxEmptyAttempts));
  for (const auto& [round, slot] : log.taken) EXPECT_EQ(round, 1);
}

TEST_F(JobRunnerTest, CancelledJobEndsCancelled) {
  twist::v1::JobSpec spec = Spec();
  InProcessCluster::Options options;
  options.workers.resize(1);
  options.workers[0].mode = Mode::kSilent;  // round 1 waits until cancelled
  InProcessCluster cluster(options);
  std::atomic<bool> cancel{false};
  JobRunOptions run_options;
  run_options.work_dir = JobDir("job");
  run_options.cancel = &cancel;
  std::thread canceller([&] {
    while (cluster.workers().log(0).taken.empty()) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    cancel.store(true);
  });
  const JobRun run = cluster.Run(NewJob(spec), run_options);
  canceller.join();

  EXPECT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.job.state(), twist::v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(Rounds(run), (std::vector<int32_t>{0}));
  EXPECT_FALSE(fs::exists(run.model_path));
}

// The resume test rests on this: a job's model is a function of its spec.
TEST_F(JobRunnerTest, SameSpecTwiceGivesTheSameModel) {
  twist::v1::JobSpec spec = Spec();
  spec.set_min_workers(2);
  const JobRun a = RunJob(spec, std::vector<WorkerBehaviour>(2), JobDir("a"));
  const JobRun b = RunJob(spec, std::vector<WorkerBehaviour>(2), JobDir("b"));
  ASSERT_TRUE(a.completed()) << a.status;
  ASSERT_TRUE(b.completed()) << b.status;
  EXPECT_TRUE(SameModel(a.model_path, b.model_path));
  ASSERT_EQ(a.rounds.size(), b.rounds.size());
  for (size_t i = 1; i < a.rounds.size(); ++i) {
    EXPECT_EQ(a.rounds[i].val_loss(), b.rounds[i].val_loss()) << "round " << i;
  }

  // And it depends on the seed (so the comparison can fail).
  spec.set_seed(spec.seed() + 1);
  const JobRun c = RunJob(spec, std::vector<WorkerBehaviour>(2), JobDir("c"));
  ASSERT_TRUE(c.completed()) << c.status;
  EXPECT_FALSE(SameModel(a.model_path, c.model_path));
}

// quota: learned follows a worker that slows down to a quarter of its speed:
// equal shares while both are equally fast, and within a few rounds of the
// slowdown a clearly smaller share for the slow one, every update accepted.
// Shared out as units (quota_in: units) it holds fewer parameters; as local
// steps it holds the same parameters and trains fewer steps (its tokens).
TEST_F(JobRunnerTest, LearnedQuotasFollowAWorkerThatSlowsDown) {
  for (auto quota_in :
       {twist::v1::QUOTA_IN_UNITS, twist::v1::QUOTA_IN_LOCAL_STEPS}) {
    const bool units = quota_in == twist::v1::QUOTA_IN_UNITS;
    twist::v1::JobSpec spec = Spec();
    spec.set_rounds(9);
    spec.set_min_workers(2);
    spec.set_local_steps(4);
    spec.set_eval_every(100);
    spec.set_quota(twist::v1::QUOTA_LEARNED);
    spec.set_quota_in(quota_in);
    // Wide enough that most parameters are dealt, not replicated.
    spec.mutable_model()->set_n_head(4);
    spec.mutable_model()->set_n_embd(128);
    std::vector<WorkerBehaviour> workers(2);
    workers[0].name = "steady";
    workers[1].name = "slowing";
    workers[1].slowdown = 4;
    workers[1].slow_from_round = 4;
    const JobRun run = RunJob(spec, workers,
                              JobDir(units ? "learned-units" : "learned-steps"));
    ASSERT_TRUE(run.completed()) << run.status;
    ASSERT_EQ(run.rounds.size(), 10u);
    // The slowing worker's share of the parameters (units) or tokens (steps).
    std::vector<double> share(10);
    for (int r = 1; r <= 9; ++r) {
      const auto& record = run.rounds[r];
      ASSERT_EQ(record.workers_size(), 2) << "round " << r;
      double steady = 0, slowing = 0;
      for (const auto& w : record.workers()) {
        EXPECT_TRUE(w.accepted()) << "round " << r << ": " << w.reason();
        const double measure = units ? w.parameters() : w.tokens();
        (w.worker_name() == "slowing" ? slowing : steady) = measure;
      }
      if (!units) {
        EXPECT_EQ(record.workers(0).parameters(),
                  record.workers(1).parameters())
            << "round " << r;
      }
      share[r] = slowing / (steady + slowing);
    }
    // Equal shares first, then as fast as each other (in-process workers on
    // shared cores: give or take 0.15; the slowdown's share is 0.2).
    EXPECT_DOUBLE_EQ(share[1], 0.5) << units;
    for (int r = 2; r <= 4; ++r) {
      EXPECT_NEAR(share[r], 0.5, 0.15) << "round " << r << ", " << units;
    }
    // Two rounds after the slowdown and from then on: a clearly smaller share
    // (with exact timings 0.30, 0.26, 0.23, 0.21; each round's timings on
    // cores that other tests share move one round's share by up to about
    // 0.1, so each round is held to 0.45 and the four together to 0.35).
    double later = 0;
    for (int r = 6; r <= 9; ++r) {
      EXPECT_LT(share[r], 0.45) << "round " << r << ", " << units;
      later += share[r] / 4;
    }
    EXPECT_LT(later, 0.35) << units;
  }
}

// A spec that names the recipe the defaults gave before the rolling deal and
// the Nesterov outer step became the defaults (random deal, outer learning
// rate 1, no momentum) trains as it did then: 2 rounds of 2 workers, compared
// with figures recorded from the code of that time. Sums, not bytes, so that
// a build whose BLAS adds in another order passes too (3e-5 seen on a sum of
// 1.85); the new defaults move most of them past the tolerance, by up to 2.7.
// TWIST_PRINT_GOLDEN=1 prints this machine's figures.
TEST_F(JobRunnerTest, SpecWithTheOldRecipeTrainsAsBefore) {
  twist::v1::JobSpec spec = Spec();
  spec.set_rounds(2);
  spec.set_min_workers(2);
  spec.set_deal(twist::v1::DEAL_RANDOM);
  spec.set_outer_learning_rate(1);
  spec.set_outer_momentum(0);
  const JobRun run = RunJob(spec, std::vector<WorkerBehaviour>(2), JobDir("old"));
  ASSERT_TRUE(run.completed()) << run.status;
  // Per tensor: the sum of its entries and of their squares.
  const std::map<std::string, std::pair<double, double>> before = {
      {"lm_head.weight", {7.766453022, 3.510693697}},
      {"transformer.h.0.attn.c_attn.bias", {-0.03859485235, 0.002221374186}},
      {"transformer.h.0.attn.c_attn.weight", {-0.2581305142, 1.330539951}},
      {"transformer.h.0.attn.c_proj.bias", {-0.03422225796, 0.001225759818}},
      {"transformer.h.0.attn.c_proj.weight", {-0.154213862, 0.2450297106}},
      {"transformer.h.0.ln_1.bias", {-0.04071418528, 0.0008203861795}},
      {"transformer.h.0.ln_1.weight", {32.03134549, 32.06337076}},
      {"transformer.h.0.ln_2.bias", {-0.001319390372, 0.0007487617605}},
      {"transformer.h.0.ln_2.weight", {32.04886985, 32.09846676}},
      {"transformer.h.0.mlp.c_fc.bias", {0.1495906832, 0.005176500357}},
      {"transformer.h.0.mlp.c_fc.weight", {-1.587884406, 1.780881218}},
      {"transformer.h.0.mlp.c_proj.bias", {-0.02299727115, 0.001431408544}},
      {"transformer.h.0.mlp.c_proj.weight", {-1.852867789, 0.9677375451}},
      {"transformer.ln_f.bias", {0.03062506381, 0.001409868029}},
      {"transformer.ln_f.weight", {32.04962862, 32.0999441}},
      {"transformer.wpe.weight", {0.3717804853, 0.4022065137}},
      {"transformer.wte.weight", {7.766453022, 3.510693697}},
  };
  std::map<std::string, std::pair<double, double>> now;
  for (const auto& [name, t] : ModelTensors(run.model_path)) {
    const at::Tensor d = t.to(torch::kDouble);
    now[name] = {d.sum().item<double>(), (d * d).sum().item<double>()};
  }
  if (std::getenv("TWIST_PRINT_GOLDEN") != nullptr) {
    for (const auto& [name, sums] : now) {
      std::printf("      {\"%s\", {%.10g, %.10g}},\n", name.c_str(), sums.first,
                  sums.second);
    }
  }
  ASSERT_EQ(now.size(), before.size());
  for (const auto& [name, sums] : before) {
    ASSERT_TRUE(now.count(name)) << name;
    const double scale = 1 + std::abs(sums.second);
    EXPECT_NEAR(now[name].first, sums.first, 1e-3 * scale) << name;
    EXPECT_NEAR(now[name].second, sums.second, 1e-3 * scale) << name;
  }
}

// A job stopped after round 3 (a coordinator shutting down) resumes, in a
// new runner of a new incarnation, from the checkpoint of round 3 and ends
// with the model of the same job run without a stop. The coordinator keeps
// the optimizer state and the outer step has momentum, so both must come
// back from the checkpoint.
TEST_F(JobRunnerTest, StoppedJobResumesFromItsCheckpointToTheSameModel) {
  twist::v1::JobSpec spec = Spec();
  spec.set_rounds(5);
  spec.set_min_workers(2);
  spec.set_eval_every(2);
  spec.set_checkpoint_every(2);
  spec.set_outer_learning_rate(0.8);
  spec.set_outer_momentum(0.5);
  spec.mutable_optimizer()->set_state(twist::v1::OPTIMIZER_STATE_COORDINATOR);
  const twist::v1::Job job = NewJob(spec);

  const JobRun whole =
      RunJob(spec, std::vector<WorkerBehaviour>(2), JobDir("whole"));
  ASSERT_TRUE(whole.completed()) << whole.status;

  const std::string dir = JobDir("stopped");
  const JobRun stopped = RunUntilStopped(job, 2, dir, 3);
  ASSERT_TRUE(stopped.status.ok()) << stopped.status;
  EXPECT_FALSE(common::IsFinished(stopped.job.state()))
      << common::JobStateName(stopped.job.state());
  EXPECT_EQ(stopped.job.round(), 3);
  EXPECT_EQ(stopped.job.checkpoint_round(), 3);
  EXPECT_EQ(Rounds(stopped), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_FALSE(fs::exists(stopped.model_path));
  auto listed = coordinator::ListCheckpoints(dir);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].first, 3);  // written as the runner stopped
  EXPECT_EQ((*listed)[1].first, 2);  // written by the finisher

  JobRun resumed;
  {
    InProcessCluster::Options options;
    options.workers.resize(2);
    options.incarnation = 2;  // a restarted coordinator
    InProcessCluster cluster(options);
    JobRunOptions run_options;
    run_options.work_dir = dir;
    resumed = cluster.Resume(stopped, run_options);
    // Only rounds 4 and 5 were dealt again.
    for (int w = 0; w < 2; ++w) {
      const testing::WorkerLog log = cluster.workers().log(w);
      ASSERT_EQ(log.taken.size(), 2u) << "worker " << w;
      EXPECT_EQ(log.taken[0].first, 4);
      EXPECT_EQ(log.taken[1].first, 5);
    }
  }
  ASSERT_TRUE(resumed.status.ok()) << resumed.status;
  EXPECT_TRUE(resumed.completed()) << resumed.job.reason();
  EXPECT_TRUE(absl::StrContains(resumed.job.notice(),
                                "resumed from the checkpoint of round 3"))
      << resumed.job.notice();
  EXPECT_EQ(Rounds(resumed), (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_TRUE(SameModel(whole.model_path, resumed.model_path));
  for (size_t i = 0; i < whole.rounds.size(); ++i) {
    EXPECT_EQ(whole.rounds[i].val_loss(), resumed.rounds[i].val_loss())
        << "round " << i;
  }
}

// A coordinator may be stopped at any moment, e.g. right after a round's
// merge, before the round loop checks its stop flag. The checkpoint written
// as it stops must then hold the model of the round it is labelled with, or
// the resumed job trains that round twice.
TEST_F(JobRunnerTest, StopAtAnyMomentResumesToTheSameModel) {
  twist::v1::JobSpec spec = Spec();
  spec.set_rounds(5);
  spec.set_min_workers(2);
  spec.set_eval_every(100);  // the finisher records round 3 at once
  spec.mutable_optimizer()->set_state(twist::v1::OPTIMIZER_STATE_COORDINATOR);
  const twist::v1::Job job = NewJob(spec);
  const JobRun whole =
      RunJob(spec, std::vector<WorkerBehaviour>(2), JobDir("whole"));
  ASSERT_TRUE(whole.completed()) << whole.status;

  for (int attempt = 0; attempt < 5; ++attempt) {
    const std::string dir = JobDir(absl::StrCat("stopped-", attempt));
    const JobRun stopped =
        RunUntilStopped(job, 2, dir, 3, /*at_once=*/true);
    ASSERT_TRUE(stopped.status.ok()) << stopped.status;
    auto listed = coordinator::ListCheckpoints(dir);
    ASSERT_TRUE(listed.ok()) << listed.status();
    ASSERT_FALSE(listed->empty());
    EXPECT_EQ((*listed)[0].first, stopped.job.round())
        << "attempt " << attempt
        << ": the newest checkpoint's round is not the last recorded one";

    InProcessCluster::Options options;
    options.workers.resize(2);
    options.incarnation = 2;
    InProcessCluster cluster(options);
    JobRunOptions run_options;
    run_options.work_dir = dir;
    const JobRun resumed = cluster.Resume(stopped, run_options);
    ASSERT_TRUE(resumed.completed()) << resumed.status;
    EXPECT_TRUE(SameModel(whole.model_path, resumed.model_path))
        << "attempt " << attempt;
  }
}

// A job whose only checkpoint is damaged does not resume (that would train
// rounds twice or lose them): it fails naming the file, and its history is
// kept.
TEST_F(JobRunnerTest, ResumeFromDamagedCheckpointFailsAndKeepsTheHistory) {
  twist::v1::JobSpec spec = Spec();
  spec.set_rounds(4);
  spec.set_checkpoint_every(2);
  const std::string dir = JobDir("job");
  const JobRun stopped = RunUntilStopped(NewJob(spec), 1, dir, 2);
  ASSERT_TRUE(stopped.status.ok()) << stopped.status;
  ASSERT_EQ(stopped.job.checkpoint_round(), 2);
  auto listed = coordinator::ListCheckpoints(dir);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  const std::string path = (*listed)[0].second;
  {
    // Flip a byte near the end (tensor data, not the header).
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-10, std::ios::end);
    char c = 0;
    f.get(c);
    f.seekp(-10, std::ios::end);
    f.put(static_cast<char>(c ^ 0x55));
  }

  InProcessCluster::Options options;
  options.workers.resize(1);
  options.incarnation = 2;
  InProcessCluster cluster(options);
  JobRunOptions run_options;
  run_options.work_dir = dir;
  const JobRun resumed = cluster.Resume(stopped, run_options);
  EXPECT_EQ(resumed.status.code(), absl::StatusCode::kFailedPrecondition)
      << resumed.status;
  EXPECT_TRUE(absl::StrContains(resumed.status.message(), "unusable"))
      << resumed.status;
  EXPECT_TRUE(absl::StrContains(resumed.status.message(), path))
      << resumed.status;
  EXPECT_EQ(resumed.job.state(), twist::v1::JOB_STATE_FAILED);
  EXPECT_EQ(Rounds(resumed), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_TRUE(cluster.workers().log(0).taken.empty());
}

}  // namespace
}  // namespace twist
