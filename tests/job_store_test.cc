// Tests of the coordinator's SQLite job store on real database files in a
// temporary folder. What the store writes is also read back with plain
// SQLite, so the on-disk columns are checked, not only the API's view.
#include "coordinator/job_store.h"

#include <google/protobuf/util/message_differencer.h>
#include "absl/strings/str_cat.h"
#include <sqlite3.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/job_store_schema.h"
#include "gtest/gtest.h"

namespace twist::coordinator {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::twist::v1::Job;
using ::twist::v1::JobSpec;
using ::twist::v1::RoundRecord;

using Rows = std::vector<std::vector<std::string>>;

// Runs `sql` on `path` with a separate, plain SQLite connection and returns
// every row as text ("NULL" for NULL).
Rows Query(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr),
            SQLITE_OK);
  Rows rows;
  char* error = nullptr;
  const int rc = sqlite3_exec(
      db, sql.c_str(),
      [](void* out, int n, char** values, char**) {
        std::vector<std::string> row;
        for (int i = 0; i < n; ++i) {
          row.push_back(values[i] == nullptr ? "NULL" : values[i]);
        }
        static_cast<Rows*>(out)->push_back(std::move(row));
        return 0;
      },
      &rows, &error);
  EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (error ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
  return rows;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

JobSpec MakeSpec(const std::string& name) {
  JobSpec spec;
  spec.set_name(name);
  spec.mutable_model()->set_n_layer(6);
  spec.mutable_model()->set_n_head(8);
  spec.mutable_model()->set_n_embd(256);
  spec.mutable_model()->set_block_size(64);
  spec.mutable_data()->set_path("/data/shakespeare");
  spec.mutable_data()->set_content_hash("sha256:abc123");
  spec.set_mode(twist::v1::MODE_LOCAL_SGD);
  spec.set_rounds(30);
  spec.set_local_steps(25);
  spec.set_batch_size(12);
  spec.mutable_optimizer()->set_learning_rate(6e-4);
  spec.mutable_optimizer()->set_grad_clip(-1.0);
  spec.set_seed(18446744073709551615ull);  // largest uint64: no sign games
  spec.set_keep_ratio(0.375);
  spec.set_capacity_weighted(true);
  spec.set_scaling(twist::v1::SCALING_NONE);
  spec.set_checkpoint_every(-1);
  spec.set_round_deadline_s(123.5);
  return spec;
}

RoundRecord MakeRound(int round, double train_loss) {
  RoundRecord record;
  record.set_round(round);
  record.set_train_loss(train_loss);
  record.set_bytes_sent(1000 + round);
  record.set_bytes_received(2000 + round);
  record.set_duration_s(1.5 * round);
  record.set_tokens(4096 * round);
  record.set_finished_at(1.7e9 + round);
  twist::v1::RoundWorker* worker = record.add_workers();
  worker->set_worker_id("w-" + std::to_string(round));
  worker->set_accepted(true);
  worker->set_train_loss(train_loss);
  return record;
}

std::vector<int> RoundNumbers(const Job& job) {
  std::vector<int> rounds;
  for (const RoundRecord& r : job.rounds()) rounds.push_back(r.round());
  return rounds;
}

std::vector<int64_t> Ids(const std::vector<Job>& jobs) {
  std::vector<int64_t> ids;
  for (const Job& job : jobs) ids.push_back(job.id());
  return ids;
}

class JobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::path(::testing::TempDir()) / "job_store_XXXXXX")
            .string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/jobs.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<JobStore> OpenStore() {
    auto store = JobStore::Open(path_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  std::string dir_;
  std::string path_;
};

// A database as the first version-1 coordinators wrote it (no notice, no
// rejected, no checkpoint_round), with one job and two rounds, one of which
// had a worker's update rejected.
void WriteVersion1Database(const std::string& path, bool with_later_columns) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  std::string sql = absl::StrCat(
      "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT "
      "NULL, spec BLOB NOT NULL, state INTEGER NOT NULL, reason TEXT NOT NULL "
      "DEFAULT '', round INTEGER NOT NULL DEFAULT 0, created_at REAL NOT "
      "NULL, started_at REAL, finished_at REAL, parameters INTEGER NOT NULL "
      "DEFAULT 0",
      with_later_columns ? ", notice TEXT NOT NULL DEFAULT ''" : "",
      "); CREATE TABLE rounds (job_id INTEGER NOT NULL REFERENCES jobs(id) ON "
      "DELETE CASCADE, round INTEGER NOT NULL, record BLOB NOT NULL, "
      "train_loss REAL, val_loss REAL, bytes_sent INTEGER NOT NULL, "
      "bytes_received INTEGER NOT NULL, duration_s REAL NOT NULL",
      with_later_columns ? ", rejected INTEGER NOT NULL DEFAULT 0" : "",
      ", PRIMARY KEY (job_id, round)); PRAGMA user_version=1;");
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr),
            SQLITE_OK);
  std::string spec;
  MakeSpec("old").SerializeToString(&spec);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "INSERT INTO jobs (name, spec, state, round, "
                               "created_at, started_at) VALUES ('old', ?, 3, "
                               "2, 1.0, 2.0)",
                               -1, &stmt, nullptr),
            SQLITE_OK);
  sqlite3_bind_blob(stmt, 1, spec.data(), spec.size(), SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_DONE);
  sqlite3_finalize(stmt);
  for (int round : {1, 2}) {
    RoundRecord record = MakeRound(round, 3.0 - round);
    if (round == 2) record.add_workers()->set_accepted(false);
    std::string bytes;
    record.SerializeToString(&bytes);
    ASSERT_EQ(sqlite3_prepare_v2(
                  db,
                  "INSERT INTO rounds (job_id, round, record, train_loss, "
                  "bytes_sent, bytes_received, duration_s) VALUES (1, ?, ?, "
                  "1.0, 1, 1, 1.0)",
                  -1, &stmt, nullptr),
              SQLITE_OK);
    sqlite3_bind_int(stmt, 1, round);
    sqlite3_bind_blob(stmt, 2, bytes.data(), bytes.size(), SQLITE_TRANSIENT);
    ASSERT_EQ(sqlite3_step(stmt), SQLITE_DONE);
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
}

TEST_F(JobStoreTest, Version1DatabasesAreMigratedKeepingEveryJobAndRound) {
  for (bool later_columns : {false, true}) {
    std::filesystem::remove(path_);
    WriteVersion1Database(path_, later_columns);
    std::unique_ptr<JobStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(Query(path_, "PRAGMA user_version"),
              (Rows{{std::to_string(kSchemaVersion)}}));
    absl::StatusOr<Job> job = store->GetJob(1, /*include_rounds=*/true);
    ASSERT_TRUE(job.ok()) << job.status();
    EXPECT_EQ(job->spec().name(), "old");
    EXPECT_EQ(job->state(), twist::v1::JOB_STATE_RUNNING);
    EXPECT_EQ(RoundNumbers(*job), (std::vector<int>{1, 2}));
    EXPECT_EQ(job->notice(), "");
    // Its checkpoints were never recorded: unknown, not "none".
    EXPECT_EQ(job->checkpoint_round(), -1);
    if (!later_columns) {  // filled in from the round records
      EXPECT_EQ(job->rejected_updates_total(), 1);
    }
    // The migrated store takes new jobs and checkpoint rounds.
    job->set_checkpoint_round(2);
    ASSERT_TRUE(store->UpdateJob(*job).ok());
    EXPECT_EQ(store->GetJob(1, false)->checkpoint_round(), 2);
    absl::StatusOr<int64_t> id = store->CreateJob(MakeSpec("new"), 3.0);
    ASSERT_TRUE(id.ok());
    EXPECT_EQ(store->GetJob(*id, false)->checkpoint_round(), 0);
  }
}

TEST_F(JobStoreTest, CreateGetAndListRoundTripTheSpec) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto first = store->CreateJob(MakeSpec("first"), 1700000000.25);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = store->CreateJob(MakeSpec("second"), 1700000100.5);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*first, 1);
  EXPECT_EQ(*second, 2);

  auto job = store->GetJob(*first, /*include_rounds=*/true);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->id(), 1);
  EXPECT_TRUE(MessageDifferencer::Equals(job->spec(), MakeSpec("first")))
      << job->spec().DebugString();
  EXPECT_EQ(job->spec().seed(), 18446744073709551615ull);
  EXPECT_EQ(job->spec().mode(), twist::v1::MODE_LOCAL_SGD);
  EXPECT_EQ(job->spec().optimizer().learning_rate(), 6e-4);
  EXPECT_EQ(job->spec().keep_ratio(), 0.375);
  EXPECT_EQ(job->state(), twist::v1::JOB_STATE_QUEUED);
  EXPECT_EQ(job->reason(), "");
  EXPECT_EQ(job->round(), 0);
  EXPECT_EQ(job->created_at(), 1700000000.25);
  EXPECT_EQ(job->started_at(), 0.0);
  EXPECT_EQ(job->finished_at(), 0.0);
  EXPECT_EQ(job->parameters(), 0);
  EXPECT_EQ(job->rounds_size(), 0);

  auto jobs = store->ListJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_EQ(Ids(*jobs), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ((*jobs)[0].spec().name(), "second");
  EXPECT_EQ((*jobs)[0].created_at(), 1700000100.5);
  EXPECT_EQ((*jobs)[1].spec().name(), "first");

  // The queryable columns hold what the spec says; unset times are NULL.
  EXPECT_EQ(Query(path_,
                  "SELECT id, name, state, reason, round, started_at, "
                  "finished_at, parameters FROM jobs ORDER BY id"),
            (Rows{{"1", "first", "1", "", "0", "NULL", "NULL", "0"},
                  {"2", "second", "1", "", "0", "NULL", "NULL", "0"}}));
}

TEST_F(JobStoreTest, NewDatabaseHasWalAndSchemaVersion) {
  ASSERT_NE(OpenStore(), nullptr);
  EXPECT_EQ(Query(path_, "PRAGMA journal_mode"), (Rows{{"wal"}}));
  EXPECT_EQ(Query(path_, "PRAGMA user_version"),
            (Rows{{std::to_string(kSchemaVersion)}}));
  EXPECT_EQ(Query(path_,
                  "SELECT name FROM sqlite_master WHERE type = 'table' AND "
                  "name IN ('jobs', 'rounds') ORDER BY name"),
            (Rows{{"jobs"}, {"rounds"}}));
}

TEST_F(JobStoreTest, UpdateJobWritesStateFieldsOnly) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto id = store->CreateJob(MakeSpec("run"), 100.0);
  ASSERT_TRUE(id.ok()) << id.status();

  Job job;
  job.set_id(*id);
  job.set_state(twist::v1::JOB_STATE_RUNNING);
  job.set_round(7);
  job.set_started_at(150.75);
  job.set_parameters(812345);
  // Fields UpdateJob must not write.
  job.set_created_at(999.0);
  *job.mutable_spec() = MakeSpec("other name");
  ASSERT_TRUE(store->UpdateJob(job).ok());

  auto got = store->GetJob(*id, /*include_rounds=*/false);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state(), twist::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(got->round(), 7);
  EXPECT_EQ(got->started_at(), 150.75);
  EXPECT_EQ(got->finished_at(), 0.0);
  EXPECT_EQ(got->parameters(), 812345);
  EXPECT_EQ(got->created_at(), 100.0);
  EXPECT_EQ(got->spec().name(), "run");

  job.set_state(twist::v1::JOB_STATE_FAILED);
  job.set_reason("worker w-1 lost: deadline exceeded");
  job.set_finished_at(200.5);
  ASSERT_TRUE(store->UpdateJob(job).ok());
  got = store->GetJob(*id, /*include_rounds=*/false);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state(), twist::v1::JOB_STATE_FAILED);
  EXPECT_EQ(got->reason(), "worker w-1 lost: deadline exceeded");
  EXPECT_EQ(got->finished_at(), 200.5);
  EXPECT_EQ(
      Query(path_, "SELECT name, state, started_at, finished_at FROM jobs"),
      (Rows{{"run", "5", "150.75", "200.5"}}));

  // Writing the same values again still finds the job.
  EXPECT_TRUE(store->UpdateJob(job).ok());

  Job unset = job;
  unset.set_state(twist::v1::JOB_STATE_UNSPECIFIED);
  EXPECT_EQ(store->UpdateJob(unset).code(), absl::StatusCode::kInvalidArgument);
  Job bogus = job;
  bogus.set_state(static_cast<twist::v1::JobState>(42));
  EXPECT_EQ(store->UpdateJob(bogus).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(JobStoreTest, RecordRoundKeepsOrderAndReplacesLaterRounds) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto id = store->CreateJob(MakeSpec("rounds"), 1.0);
  ASSERT_TRUE(id.ok()) << id.status();
  for (int r = 0; r <= 5; ++r) {
    ASSERT_TRUE(store->RecordRound(*id, MakeRound(r, 10.0 - r)).ok());
  }
  auto job = store->GetJob(*id, /*include_rounds=*/true);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->round(), 5);
  ASSERT_EQ(RoundNumbers(*job), (std::vector<int>{0, 1, 2, 3, 4, 5}));
  for (int r = 0; r <= 5; ++r) {
    EXPECT_TRUE(
        MessageDifferencer::Equals(job->rounds(r), MakeRound(r, 10.0 - r)))
        << job->rounds(r).DebugString();
  }

  // The job resumes from its round-2 checkpoint and finishes round 3 again.
  RoundRecord rerun = MakeRound(3, 6.25);
  rerun.set_bytes_sent(31337);
  ASSERT_TRUE(store->RecordRound(*id, rerun).ok());
  job = store->GetJob(*id, /*include_rounds=*/true);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->round(), 3);
  ASSERT_EQ(RoundNumbers(*job), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_TRUE(MessageDifferencer::Equals(job->rounds(3), rerun))
      << job->rounds(3).DebugString();
  EXPECT_TRUE(MessageDifferencer::Equals(job->rounds(2), MakeRound(2, 8.0)));
  EXPECT_EQ(Query(path_,
                  "SELECT round, train_loss, bytes_sent, bytes_received, "
                  "duration_s FROM rounds ORDER BY round"),
            (Rows{{"0", "10.0", "1000", "2000", "0.0"},
                  {"1", "9.0", "1001", "2001", "1.5"},
                  {"2", "8.0", "1002", "2002", "3.0"},
                  {"3", "6.25", "31337", "2003", "4.5"}}));

  // A rerun of round 0 (a restart from scratch) leaves only that round.
  ASSERT_TRUE(store->RecordRound(*id, MakeRound(0, 11.0)).ok());
  job = store->GetJob(*id, /*include_rounds=*/true);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->round(), 0);
  ASSERT_EQ(RoundNumbers(*job), (std::vector<int>{0}));
  EXPECT_EQ(job->rounds(0).train_loss(), 11.0);

  EXPECT_EQ(store->RecordRound(*id, MakeRound(-1, 1.0)).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(JobStoreTest, RecordRoundsOfSeveralJobsStaySeparate) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto a = store->CreateJob(MakeSpec("a"), 1.0);
  auto b = store->CreateJob(MakeSpec("b"), 2.0);
  ASSERT_TRUE(a.ok() && b.ok());
  for (int r = 0; r <= 4; ++r) {
    ASSERT_TRUE(store->RecordRound(*a, MakeRound(r, 1.0)).ok());
  }
  for (int r = 0; r <= 2; ++r) {
    ASSERT_TRUE(store->RecordRound(*b, MakeRound(r, 2.0)).ok());
  }
  ASSERT_TRUE(store->RecordRound(*b, MakeRound(1, 3.0)).ok());
  auto job_a = store->GetJob(*a, /*include_rounds=*/true);
  auto job_b = store->GetJob(*b, /*include_rounds=*/true);
  ASSERT_TRUE(job_a.ok() && job_b.ok());
  EXPECT_EQ(RoundNumbers(*job_a), (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(job_a->round(), 4);
  EXPECT_EQ(RoundNumbers(*job_b), (std::vector<int>{0, 1}));
  EXPECT_EQ(job_b->round(), 1);
}

TEST_F(JobStoreTest, FailedRecordRoundChangesNothing) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateJob(MakeSpec("atomic"), 1.0).ok());
    for (int r = 0; r <= 5; ++r) {
      ASSERT_TRUE(store->RecordRound(1, MakeRound(r, 10.0 - r)).ok());
    }
  }
  // Make the insert, the last step of RecordRound, fail after the delete of
  // the later rounds and the update of jobs.round have run.
  Query(path_,
        "CREATE TRIGGER refuse_42 BEFORE INSERT ON rounds "
        "WHEN NEW.train_loss = 42 BEGIN SELECT RAISE(ABORT, 'refused'); END");
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const absl::Status status = store->RecordRound(1, MakeRound(2, 42.0));
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << status;
  EXPECT_NE(status.message().find("record round 2 of job 1"), std::string::npos)
      << status;
  EXPECT_NE(status.message().find("refused"), std::string::npos) << status;
  EXPECT_NE(status.message().find(path_), std::string::npos) << status;

  auto job = store->GetJob(1, /*include_rounds=*/true);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->round(), 5);
  ASSERT_EQ(RoundNumbers(*job), (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(job->rounds(2).train_loss(), 8.0);
  // The store still works after the rollback.
  ASSERT_TRUE(store->RecordRound(1, MakeRound(6, 4.0)).ok());
  job = store->GetJob(1, /*include_rounds=*/true);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(RoundNumbers(*job), (std::vector<int>{0, 1, 2, 3, 4, 5, 6}));
}

TEST_F(JobStoreTest, TruncateRoundsKeepsUpToTheCheckpoint) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto id = store->CreateJob(MakeSpec("truncate"), 1.0);
  ASSERT_TRUE(id.ok()) << id.status();
  for (int r = 0; r <= 6; ++r) {
    ASSERT_TRUE(store->RecordRound(*id, MakeRound(r, 7.0 - r)).ok());
  }
  ASSERT_TRUE(store->TruncateRounds(*id, 4).ok());
  auto job = store->GetJob(*id, /*include_rounds=*/true);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->round(), 4);
  ASSERT_EQ(RoundNumbers(*job), (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_TRUE(MessageDifferencer::Equals(job->rounds(4), MakeRound(4, 3.0)));

  // Truncating past the end keeps everything but still sets the round.
  ASSERT_TRUE(store->TruncateRounds(*id, 10).ok());
  job = store->GetJob(*id, /*include_rounds=*/true);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->round(), 10);
  EXPECT_EQ(job->rounds_size(), 5);

  ASSERT_TRUE(store->TruncateRounds(*id, -1).ok());
  job = store->GetJob(*id, /*include_rounds=*/true);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->round(), 0);
  EXPECT_EQ(job->rounds_size(), 0);
  EXPECT_EQ(Query(path_, "SELECT count(*) FROM rounds"), (Rows{{"0"}}));

  EXPECT_EQ(store->TruncateRounds(*id, -2).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(JobStoreTest, ReopenedStoreSeesEverything) {
  Job expected_first;
  Job expected_second;
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateJob(MakeSpec("one"), 10.0).ok());
    ASSERT_TRUE(store->CreateJob(MakeSpec("two"), 20.0).ok());
    for (int r = 0; r <= 3; ++r) {
      ASSERT_TRUE(store->RecordRound(1, MakeRound(r, 5.0 - r)).ok());
    }
    Job update;
    update.set_id(1);
    update.set_state(twist::v1::JOB_STATE_RUNNING);
    update.set_reason("");
    update.set_round(3);
    update.set_started_at(11.0);
    update.set_parameters(4242);
    ASSERT_TRUE(store->UpdateJob(update).ok());
    auto first = store->GetJob(1, /*include_rounds=*/true);
    auto second = store->GetJob(2, /*include_rounds=*/true);
    ASSERT_TRUE(first.ok() && second.ok());
    expected_first = *first;
    expected_second = *second;
  }
  // Closing checkpoints the WAL into the main file.
  EXPECT_FALSE(std::filesystem::exists(path_ + "-wal") &&
               std::filesystem::file_size(path_ + "-wal") > 0);

  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto first = store->GetJob(1, /*include_rounds=*/true);
  auto second = store->GetJob(2, /*include_rounds=*/true);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*first, expected_first))
      << first->DebugString();
  EXPECT_TRUE(MessageDifferencer::Equals(*second, expected_second))
      << second->DebugString();
  EXPECT_EQ(first->state(), twist::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(first->parameters(), 4242);
  EXPECT_EQ(RoundNumbers(*first), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(second->spec().name(), "two");

  // Ids continue after the existing ones.
  auto third = store->CreateJob(MakeSpec("three"), 30.0);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(*third, 3);
}

TEST_F(JobStoreTest, UnfinishedJobsAreQueuedWaitingRunningOldestFirst) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const twist::v1::JobState states[] = {
      twist::v1::JOB_STATE_RUNNING, twist::v1::JOB_STATE_COMPLETED,
      twist::v1::JOB_STATE_QUEUED,  twist::v1::JOB_STATE_FAILED,
      twist::v1::JOB_STATE_WAITING, twist::v1::JOB_STATE_CANCELLED,
      twist::v1::JOB_STATE_QUEUED};
  for (int i = 0; i < 7; ++i) {
    // Created_at runs backwards so that only ids can give the order.
    auto id = store->CreateJob(MakeSpec("job" + std::to_string(i)), 100.0 - i);
    ASSERT_TRUE(id.ok()) << id.status();
    Job job;
    job.set_id(*id);
    job.set_state(states[i]);
    ASSERT_TRUE(store->UpdateJob(job).ok());
  }
  auto unfinished = store->UnfinishedJobs();
  ASSERT_TRUE(unfinished.ok()) << unfinished.status();
  EXPECT_EQ(Ids(*unfinished), (std::vector<int64_t>{1, 3, 5, 7}));
  EXPECT_EQ((*unfinished)[0].state(), twist::v1::JOB_STATE_RUNNING);
  EXPECT_EQ((*unfinished)[2].state(), twist::v1::JOB_STATE_WAITING);
  EXPECT_EQ((*unfinished)[3].spec().name(), "job6");

  auto all = store->ListJobs();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(Ids(*all), (std::vector<int64_t>{7, 6, 5, 4, 3, 2, 1}));
}

TEST_F(JobStoreTest, EmptyStoreListsNothing) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto all = store->ListJobs();
  auto unfinished = store->UnfinishedJobs();
  ASSERT_TRUE(all.ok() && unfinished.ok());
  EXPECT_TRUE(all->empty());
  EXPECT_TRUE(unfinished->empty());
}

TEST_F(JobStoreTest, UnknownJobIsNotFound) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateJob(MakeSpec("only"), 1.0).ok());

  auto job = store->GetJob(42, /*include_rounds=*/true);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(job.status().message(),
            "job 42 does not exist: `twistctl list` shows the jobs");

  Job update;
  update.set_id(42);
  update.set_state(twist::v1::JOB_STATE_RUNNING);
  const absl::Status updated = store->UpdateJob(update);
  EXPECT_EQ(updated.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(updated.message(),
            "job 42 does not exist: `twistctl list` shows the jobs");

  EXPECT_EQ(store->RecordRound(42, MakeRound(0, 1.0)).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store->TruncateRounds(42, 0).code(), absl::StatusCode::kNotFound);
  // The failed RecordRound left no orphan row behind.
  EXPECT_EQ(Query(path_, "SELECT count(*) FROM rounds"), (Rows{{"0"}}));
}

TEST_F(JobStoreTest, NanTrainLossAndMissingValLossRoundTrip) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto id = store->CreateJob(MakeSpec("nan"), 1.0);
  ASSERT_TRUE(id.ok()) << id.status();

  RoundRecord initial = MakeRound(0, std::numeric_limits<double>::quiet_NaN());
  initial.set_has_val_loss(true);
  initial.set_val_loss(5.25);
  ASSERT_TRUE(store->RecordRound(*id, initial).ok());
  RoundRecord trained = MakeRound(1, 4.5);  // not evaluated
  ASSERT_TRUE(store->RecordRound(*id, trained).ok());

  auto job = store->GetJob(*id, /*include_rounds=*/true);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->rounds_size(), 2);
  EXPECT_TRUE(std::isnan(job->rounds(0).train_loss()));
  EXPECT_TRUE(job->rounds(0).has_val_loss());
  EXPECT_EQ(job->rounds(0).val_loss(), 5.25);
  EXPECT_EQ(job->rounds(1).train_loss(), 4.5);
  EXPECT_FALSE(job->rounds(1).has_val_loss());
  EXPECT_EQ(Query(path_,
                  "SELECT round, train_loss, val_loss FROM rounds "
                  "ORDER BY round"),
            (Rows{{"0", "NULL", "5.25"}, {"1", "4.5", "NULL"}}));
}

TEST_F(JobStoreTest, GarbageFileFailsCleanlyAndIsLeftAlone) {
  std::string garbage;
  for (int i = 0; i < 200; ++i) garbage += "this is not a database file. ";
  {
    std::ofstream out(path_, std::ios::binary);
    out << garbage;
  }
  auto store = JobStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
      << store.status();
  EXPECT_NE(store.status().message().find(path_), std::string::npos)
      << store.status();
  EXPECT_EQ(ReadFile(path_), garbage);
}

TEST_F(JobStoreTest, MissingFolderIsFailedPrecondition) {
  const std::string path = dir_ + "/no/such/folder/jobs.db";
  auto store = JobStore::Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition)
      << store.status();
  EXPECT_NE(store.status().message().find(path), std::string::npos)
      << store.status();
  EXPECT_EQ(JobStore::Open("").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(JobStoreTest, DatabaseOfAnotherProgramIsRefused) {
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE notes (text TEXT)", nullptr,
                           nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto store = JobStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition)
      << store.status();
  EXPECT_NE(store.status().message().find(path_), std::string::npos);
  // Left as it was: no tables added, journal mode unchanged.
  EXPECT_EQ(Query(path_, "SELECT name FROM sqlite_master WHERE type = 'table'"),
            (Rows{{"notes"}}));
  EXPECT_EQ(Query(path_, "PRAGMA journal_mode"), (Rows{{"delete"}}));
}

TEST_F(JobStoreTest, NewerSchemaVersionIsRefused) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateJob(MakeSpec("old"), 1.0).ok());
  }
  Query(path_, "PRAGMA user_version = 3");
  auto store = JobStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition)
      << store.status();
  EXPECT_NE(store.status().message().find("schema version 3"),
            std::string::npos)
      << store.status();
  EXPECT_NE(store.status().message().find(path_), std::string::npos);
  EXPECT_EQ(Query(path_, "PRAGMA user_version"), (Rows{{"3"}}));
  EXPECT_EQ(Query(path_, "SELECT name FROM jobs"), (Rows{{"old"}}));
}

TEST_F(JobStoreTest, CorruptSpecBlobIsDataLoss) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateJob(MakeSpec("damaged"), 1.0).ok());
  }
  // 0xff is a field tag with an invalid wire type: no JobSpec parses it.
  Query(path_, "UPDATE jobs SET spec = x'ffffffff' WHERE id = 1");
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto job = store->GetJob(1, /*include_rounds=*/false);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kDataLoss) << job.status();
  EXPECT_EQ(store->ListJobs().status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(JobStoreTest, ConcurrentCallsFromThreadsAreSerialized) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 4;
  constexpr int kRounds = 40;
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store, &results, t] {
      auto id = store->CreateJob(MakeSpec("thread" + std::to_string(t)), t);
      if (!id.ok()) {
        results[t] = id.status();
        return;
      }
      for (int r = 0; r < kRounds; ++r) {
        absl::Status status = store->RecordRound(*id, MakeRound(r, t));
        if (status.ok()) status = store->ListJobs().status();
        if (!status.ok()) {
          results[t] = status;
          return;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& status : results) EXPECT_TRUE(status.ok()) << status;

  auto jobs = store->ListJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), static_cast<size_t>(kThreads));
  for (const Job& listed : *jobs) {
    auto job = store->GetJob(listed.id(), /*include_rounds=*/true);
    ASSERT_TRUE(job.ok()) << job.status();
    EXPECT_EQ(job->round(), kRounds - 1);
    ASSERT_EQ(job->rounds_size(), kRounds);
    for (int r = 0; r < kRounds; ++r) {
      EXPECT_EQ(job->rounds(r).round(), r);
      // Each thread wrote its own index as the loss of its job.
      EXPECT_EQ(job->rounds(r).train_loss(), job->created_at());
    }
  }
}

}  // namespace
}  // namespace twist::coordinator
