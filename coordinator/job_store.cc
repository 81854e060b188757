// JobStore on SQLite: the schema and the queries (the RAII layer over
// SQLite's C API is coordinator/sqlite_db.h).
#include "coordinator/job_store.h"

#include <sqlite3.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/base/status_macros.h"
#include "coordinator/job_store_schema.h"
#include "coordinator/sqlite_db.h"

namespace twist::coordinator {
namespace {

using ::twist::v1::Job;
using ::twist::v1::JobSpec;
using ::twist::v1::JobState;
using ::twist::v1::RoundRecord;

// Column order of every job query; ReadJob depends on it. The summaries of
// the job's rounds come from the rounds table (indexed by its primary key).
constexpr char kJobColumns[] =
    "SELECT id, spec, state, reason, round, created_at, started_at, "
    "finished_at, parameters, notice, checkpoint_round, "
    "(SELECT COALESCE(SUM(rejected), 0) FROM rounds r WHERE r.job_id = "
    "jobs.id), "
    "(SELECT train_loss FROM rounds r WHERE r.job_id = jobs.id AND "
    "r.train_loss IS NOT NULL ORDER BY r.round DESC LIMIT 1), "
    "(SELECT val_loss FROM rounds r WHERE r.job_id = jobs.id AND "
    "r.val_loss IS NOT NULL ORDER BY r.round DESC LIMIT 1), "
    "(SELECT COALESCE(SUM(bytes_sent), 0) FROM rounds r WHERE r.job_id = "
    "jobs.id), "
    "(SELECT COALESCE(SUM(bytes_received), 0) FROM rounds r WHERE r.job_id = "
    "jobs.id), "
    "(SELECT duration_s FROM rounds r WHERE r.job_id = jobs.id "
    "ORDER BY r.round DESC LIMIT 1) "
    "FROM jobs ";

absl::Status JobNotFound(int64_t id) {
  return absl::NotFoundError(absl::StrCat(
      "job ", id, " does not exist: `twistctl list` shows the jobs"));
}

// Reads one row of kJobColumns.
absl::StatusOr<Job> ReadJob(const sqlite::Statement& stmt, absl::string_view path) {
  Job job;
  job.set_id(stmt.Int64(0));
  if (!job.mutable_spec()->ParseFromString(stmt.Blob(1))) {
    return absl::DataLossError(absl::StrCat(
        "job ", job.id(), " in ", path,
        ": the stored spec is not a valid twist.v1.JobSpec; the database is "
        "damaged: restore a backup or move the file aside"));
  }
  const int64_t state = stmt.Int64(2);
  if (state < 0 || state > INT32_MAX ||
      !twist::v1::JobState_IsValid(static_cast<int>(state))) {
    return absl::DataLossError(absl::StrCat(
        "job ", job.id(), " in ", path, ": stored state ", state,
        " is not a twist.v1.JobState; the file was written by a newer "
        "coordinator or is damaged"));
  }
  job.set_state(static_cast<JobState>(state));
  job.set_reason(stmt.Text(3));
  job.set_round(static_cast<int32_t>(stmt.Int64(4)));
  job.set_created_at(stmt.Double(5));
  job.set_started_at(stmt.IsNull(6) ? 0.0 : stmt.Double(6));
  job.set_finished_at(stmt.IsNull(7) ? 0.0 : stmt.Double(7));
  job.set_parameters(stmt.Int64(8));
  job.set_notice(stmt.Text(9));
  job.set_checkpoint_round(static_cast<int32_t>(stmt.Int64(10)));
  job.set_rejected_updates_total(stmt.Int64(11));
  if (!stmt.IsNull(12)) job.set_last_train_loss(stmt.Double(12));
  if (!stmt.IsNull(13)) job.set_last_val_loss(stmt.Double(13));
  job.set_bytes_sent_total(stmt.Int64(14));
  job.set_bytes_received_total(stmt.Int64(15));
  job.set_last_round_duration_s(stmt.IsNull(16) ? 0.0 : stmt.Double(16));
  return job;
}

}  // namespace

JobStore::JobStore(std::string path, sqlite3* db)
    : path_(std::move(path)), db_(db) {}

JobStore::~JobStore() {
  absl::MutexLock lock(&mu_);
  // Every statement has been finalized by its owner before its method
  // returned, so this closes the connection (and checkpoints the WAL) now.
  // A null handle, from an open that could not allocate one, is a no-op.
  sqlite3_close(db_);
}

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(
    const std::string& path) {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        "job database path is empty: pass a file such as <state_dir>/jobs.db");
  }
  sqlite3* db = nullptr;
  // The store serializes its own calls (mu_), so SQLite's per-connection
  // mutex would only add cost.
  const int rc = sqlite3_open_v2(
      path.c_str(), &db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      /*zVfs=*/nullptr);
  // Even a failed open returns a handle (or null) that must be closed; the
  // store owns it from here.
  std::unique_ptr<JobStore> store(new JobStore(path, db));
  if (rc != SQLITE_OK) return sqlite::Error(rc, db, path, "open job database");
  TWIST_RETURN_IF_ERROR(store->Initialize());
  return store;
}

absl::Status JobStore::Initialize() {
  absl::MutexLock lock(&mu_);
  return InitializeSchema(db_, path_, kBusyTimeoutMs);
}

absl::StatusOr<int64_t> JobStore::CreateJob(const JobSpec& spec,
                                            double created_at) {
  std::string spec_bytes;
  if (!spec.SerializeToString(&spec_bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "job spec '", spec.name(), "' cannot be serialized (over 2 GiB?)"));
  }
  absl::MutexLock lock(&mu_);
  TWIST_ASSIGN_OR_RETURN(
      sqlite::Statement stmt,
      sqlite::Statement::Prepare(
          db_, path_, "create job",
          "INSERT INTO jobs (name, spec, state, reason, round, "
          "created_at, parameters) VALUES (?, ?, ?, '', 0, ?, 0)"));
  stmt.BindText(1, spec.name());
  stmt.BindBlob(2, spec_bytes);
  stmt.BindInt64(3, twist::v1::JOB_STATE_QUEUED);
  stmt.BindDouble(4, created_at);
  TWIST_RETURN_IF_ERROR(stmt.Run());
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

absl::Status JobStore::UpdateJob(const Job& job) {
  if (job.state() == twist::v1::JOB_STATE_UNSPECIFIED ||
      !twist::v1::JobState_IsValid(job.state())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "job ", job.id(), ": state ", job.state(),
        " cannot be stored: set one of QUEUED, WAITING, RUNNING, COMPLETED, "
        "FAILED, CANCELLED"));
  }
  absl::MutexLock lock(&mu_);
  const std::string operation = absl::StrCat("update job ", job.id());
  TWIST_ASSIGN_OR_RETURN(
      sqlite::Statement stmt,
      sqlite::Statement::Prepare(db_, path_, operation,
                         "UPDATE jobs SET state = ?, reason = ?, round = ?, "
                         "started_at = ?, finished_at = ?, parameters = ?, "
                         "notice = ?, checkpoint_round = ? WHERE id = ?"));
  stmt.BindInt64(1, job.state());
  stmt.BindText(2, job.reason());
  stmt.BindInt64(3, job.round());
  stmt.BindTimeOrNull(4, job.started_at());
  stmt.BindTimeOrNull(5, job.finished_at());
  stmt.BindInt64(6, job.parameters());
  stmt.BindText(7, job.notice());
  stmt.BindInt64(8, job.checkpoint_round());
  stmt.BindInt64(9, job.id());
  TWIST_RETURN_IF_ERROR(stmt.Run());
  // Counts rows matched, even those whose values did not change.
  if (sqlite3_changes(db_) == 0) return JobNotFound(job.id());
  return absl::OkStatus();
}

absl::Status JobStore::RecordRound(int64_t job_id, const RoundRecord& record) {
  if (record.round() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("job ", job_id, ": round record has round ",
                     record.round(), "; rounds start at 0"));
  }
  std::string record_bytes;
  if (!record.SerializeToString(&record_bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("job ", job_id, ": record of round ", record.round(),
                     " cannot be serialized (over 2 GiB?)"));
  }
  absl::MutexLock lock(&mu_);
  const std::string operation =
      absl::StrCat("record round ", record.round(), " of job ", job_id);
  TWIST_ASSIGN_OR_RETURN(sqlite::Transaction txn,
                         sqlite::Transaction::Begin(db_, path_, operation));
  TWIST_RETURN_IF_ERROR(
      SetRoundLocked(job_id, record.round(), record.round() - 1, operation));
  {
    TWIST_ASSIGN_OR_RETURN(
        sqlite::Statement stmt,
        sqlite::Statement::Prepare(
            db_, path_, operation,
            "INSERT INTO rounds (job_id, round, record, "
            "train_loss, val_loss, bytes_sent, bytes_received, "
            "duration_s, rejected) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    stmt.BindInt64(1, job_id);
    stmt.BindInt64(2, record.round());
    stmt.BindBlob(3, record_bytes);
    stmt.BindDouble(4, record.train_loss());
    if (record.has_val_loss()) {
      stmt.BindDouble(5, record.val_loss());
    } else {
      stmt.BindNull(5);
    }
    stmt.BindInt64(6, record.bytes_sent());
    stmt.BindInt64(7, record.bytes_received());
    stmt.BindDouble(8, record.duration_s());
    int64_t rejected = 0;
    for (const auto& w : record.workers()) rejected += w.accepted() ? 0 : 1;
    stmt.BindInt64(9, rejected);
    TWIST_RETURN_IF_ERROR(stmt.Run());
  }
  return txn.Commit();
}

absl::Status JobStore::TruncateRounds(int64_t job_id,
                                      int32_t keep_up_to_round) {
  if (keep_up_to_round < -1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "job ", job_id, ": cannot keep rounds up to ", keep_up_to_round,
        "; pass a round >= 0, or -1 to delete every round"));
  }
  absl::MutexLock lock(&mu_);
  const std::string operation = absl::StrCat("truncate rounds of job ", job_id,
                                             " after round ", keep_up_to_round);
  TWIST_ASSIGN_OR_RETURN(sqlite::Transaction txn,
                         sqlite::Transaction::Begin(db_, path_, operation));
  TWIST_RETURN_IF_ERROR(SetRoundLocked(
      job_id, keep_up_to_round < 0 ? 0 : keep_up_to_round, keep_up_to_round,
      operation));
  return txn.Commit();
}

absl::Status JobStore::SetRoundLocked(int64_t job_id, int32_t round,
                                      int32_t keep_up_to_round,
                                      const std::string& operation) {
  {
    TWIST_ASSIGN_OR_RETURN(
        sqlite::Statement stmt,
        sqlite::Statement::Prepare(db_, path_, operation,
                                   "UPDATE jobs SET round = ? WHERE id = ?"));
    stmt.BindInt64(1, round);
    stmt.BindInt64(2, job_id);
    TWIST_RETURN_IF_ERROR(stmt.Run());
    if (sqlite3_changes(db_) == 0) return JobNotFound(job_id);
  }
  TWIST_ASSIGN_OR_RETURN(
      sqlite::Statement stmt,
      sqlite::Statement::Prepare(
          db_, path_, operation,
          "DELETE FROM rounds WHERE job_id = ? AND round > ?"));
  stmt.BindInt64(1, job_id);
  stmt.BindInt64(2, keep_up_to_round);
  return stmt.Run();
}

absl::StatusOr<Job> JobStore::GetJob(int64_t id, bool include_rounds) {
  absl::MutexLock lock(&mu_);
  const std::string operation = absl::StrCat("read job ", id);
  Job job;
  {
    TWIST_ASSIGN_OR_RETURN(
        sqlite::Statement stmt,
        sqlite::Statement::Prepare(db_, path_, operation,
                           absl::StrCat(kJobColumns, "WHERE id = ?")));
    stmt.BindInt64(1, id);
    TWIST_ASSIGN_OR_RETURN(const bool row, stmt.Step());
    if (!row) return JobNotFound(id);
    TWIST_ASSIGN_OR_RETURN(job, ReadJob(stmt, path_));
  }
  if (!include_rounds) return job;
  TWIST_RETURN_IF_ERROR(ReadRoundsLocked(id, -1, job.mutable_rounds()));
  return job;
}

absl::StatusOr<std::vector<RoundRecord>> JobStore::GetRounds(
    int64_t job_id, int32_t after_round) {
  absl::MutexLock lock(&mu_);
  google::protobuf::RepeatedPtrField<RoundRecord> rounds;
  TWIST_RETURN_IF_ERROR(ReadRoundsLocked(job_id, after_round, &rounds));
  return std::vector<RoundRecord>(std::make_move_iterator(rounds.begin()),
                                  std::make_move_iterator(rounds.end()));
}

absl::Status JobStore::ReadRoundsLocked(
    int64_t job_id, int32_t after_round,
    google::protobuf::RepeatedPtrField<RoundRecord>* out) {
  TWIST_ASSIGN_OR_RETURN(
      sqlite::Statement stmt,
      sqlite::Statement::Prepare(
          db_, path_, absl::StrCat("read rounds of job ", job_id),
          "SELECT round, record FROM rounds WHERE job_id = ? AND round > ? "
          "ORDER BY round"));
  stmt.BindInt64(1, job_id);
  stmt.BindInt64(2, after_round);
  for (;;) {
    TWIST_ASSIGN_OR_RETURN(const bool row, stmt.Step());
    if (!row) return absl::OkStatus();
    const int64_t round = stmt.Int64(0);
    RoundRecord* record = out->Add();
    if (!record->ParseFromString(stmt.Blob(1)) || record->round() != round) {
      return absl::DataLossError(absl::StrCat(
          "round ", round, " of job ", job_id, " in ", path_,
          ": the stored record is not a valid twist.v1.RoundRecord for that "
          "round; the database is damaged: restore a backup or move the file "
          "aside"));
    }
  }
}

absl::StatusOr<std::vector<Job>> JobStore::SelectJobs(
    const char* where_and_order, const char* operation) {
  TWIST_ASSIGN_OR_RETURN(
      sqlite::Statement stmt,
      sqlite::Statement::Prepare(db_, path_, operation,
                         absl::StrCat(kJobColumns, where_and_order)));
  std::vector<Job> jobs;
  while (true) {
    TWIST_ASSIGN_OR_RETURN(const bool row, stmt.Step());
    if (!row) break;
    TWIST_ASSIGN_OR_RETURN(Job job, ReadJob(stmt, path_));
    jobs.push_back(std::move(job));
  }
  return jobs;
}

absl::StatusOr<std::vector<Job>> JobStore::ListJobs() {
  absl::MutexLock lock(&mu_);
  return SelectJobs("ORDER BY id DESC", "list jobs");
}

absl::StatusOr<std::vector<Job>> JobStore::UnfinishedJobs() {
  absl::MutexLock lock(&mu_);
  // Ids grow with submission (AUTOINCREMENT), so id order is age order even
  // when two jobs share a created_at.
  static const std::string kWhere =
      absl::StrCat("WHERE state IN (", twist::v1::JOB_STATE_QUEUED, ", ",
                   twist::v1::JOB_STATE_WAITING, ", ",
                   twist::v1::JOB_STATE_RUNNING, ") ORDER BY id ASC");
  return SelectJobs(kWhere.c_str(), "list unfinished jobs");
}

}  // namespace twist::coordinator
