#include "coordinator/job_store_schema.h"

#include <cstdint>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "coordinator/sqlite_db.h"
#include "twist/v1/job.pb.h"

namespace twist::coordinator {
namespace {

// The current schema, applied to a database that holds no tables.
// AUTOINCREMENT keeps ids of deleted jobs from being reused, so an id in an
// old log or checkpoint folder never names a different job.
constexpr char kSchemaSql[] = R"sql(
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  spec BLOB NOT NULL,
  state INTEGER NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  round INTEGER NOT NULL DEFAULT 0,
  created_at REAL NOT NULL,
  started_at REAL,
  finished_at REAL,
  parameters INTEGER NOT NULL DEFAULT 0,
  notice TEXT NOT NULL DEFAULT '',
  checkpoint_round INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE rounds (
  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  round INTEGER NOT NULL,
  record BLOB NOT NULL,
  train_loss REAL,
  val_loss REAL,
  bytes_sent INTEGER NOT NULL,
  bytes_received INTEGER NOT NULL,
  duration_s REAL NOT NULL,
  rejected INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (job_id, round)
);
)sql";

// The column names of `table`.
absl::StatusOr<std::set<std::string>> Columns(sqlite3* db,
                                              const std::string& path,
                                              const std::string& table) {
  TWIST_ASSIGN_OR_RETURN(
      sqlite::Statement stmt,
      sqlite::Statement::Prepare(db, path, "read columns",
                                 absl::StrCat("PRAGMA table_info(", table, ")")));
  std::set<std::string> out;
  for (;;) {
    TWIST_ASSIGN_OR_RETURN(const bool row, stmt.Step());
    if (!row) break;
    out.insert(stmt.Text(1));
  }
  return out;
}

// Version 1 to 2: the columns version 1 files may lack, and checkpoint_round
// (-1, unknown, for every job already recorded). `rejected` is filled in from
// the stored round records.
absl::Status MigrateFrom1(sqlite3* db, const std::string& path) {
  const std::string op = "migrate the job database from version 1";
  TWIST_ASSIGN_OR_RETURN(std::set<std::string> jobs, Columns(db, path, "jobs"));
  TWIST_ASSIGN_OR_RETURN(std::set<std::string> rounds,
                         Columns(db, path, "rounds"));
  if (jobs.count("notice") == 0) {
    TWIST_RETURN_IF_ERROR(sqlite::Exec(
        db, path, op,
        "ALTER TABLE jobs ADD COLUMN notice TEXT NOT NULL DEFAULT ''"));
  }
  TWIST_RETURN_IF_ERROR(sqlite::Exec(
      db, path, op,
      "ALTER TABLE jobs ADD COLUMN checkpoint_round INTEGER NOT NULL "
      "DEFAULT 0; UPDATE jobs SET checkpoint_round = -1"));
  if (rounds.count("rejected") == 0) {
    TWIST_RETURN_IF_ERROR(sqlite::Exec(
        db, path, op,
        "ALTER TABLE rounds ADD COLUMN rejected INTEGER NOT NULL DEFAULT 0"));
    TWIST_ASSIGN_OR_RETURN(
        sqlite::Statement select,
        sqlite::Statement::Prepare(db, path, op,
                                   "SELECT job_id, round, record FROM rounds"));
    for (;;) {
      TWIST_ASSIGN_OR_RETURN(const bool row, select.Step());
      if (!row) break;
      twist::v1::RoundRecord record;
      if (!record.ParseFromString(select.Blob(2))) continue;  // GetJob says
      int64_t rejected = 0;
      for (const auto& w : record.workers()) rejected += w.accepted() ? 0 : 1;
      TWIST_ASSIGN_OR_RETURN(
          sqlite::Statement update,
          sqlite::Statement::Prepare(
              db, path, op,
              "UPDATE rounds SET rejected = ? WHERE job_id = ? AND round = ?"));
      update.BindInt64(1, rejected);
      update.BindInt64(2, select.Int64(0));
      update.BindInt64(3, select.Int64(1));
      TWIST_RETURN_IF_ERROR(update.Run());
    }
  }
  return absl::OkStatus();
}

// Reads the file's schema version, which is also the first read of the file
// header and so catches a file that is not a database at all.
// FailedPrecondition for a file this coordinator must leave alone: a newer
// version, a negative one, or 0 (no TwIST schema) in a file that has tables.
absl::StatusOr<int64_t> ReadUsableVersion(sqlite3* db,
                                          const std::string& path) {
  TWIST_ASSIGN_OR_RETURN(const int64_t version,
                         sqlite::QueryInt64(db, path, "read schema version",
                                            "PRAGMA user_version"));
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job database ", path, " has schema version ", version,
        " but this coordinator understands up to version ", kSchemaVersion,
        ": it was written by a newer coordinator; run that version, or use "
        "another --state_dir"));
  }
  if (version < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job database ", path, " has schema version ", version,
        ", which no coordinator writes: it belongs to another program; use "
        "another --state_dir"));
  }
  if (version == 0) {
    TWIST_ASSIGN_OR_RETURN(
        const int64_t tables,
        sqlite::QueryInt64(
            db, path, "list tables",
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'"));
    if (tables > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, " is an SQLite database of another program (", tables,
          " tables, no TwIST schema version): use another --state_dir or "
          "move the file aside"));
    }
  }
  return version;
}

// Switches the journal to WAL, which lets readers (the sqlite3 shell, a
// backup) run while the coordinator writes, and makes each commit one
// sequential append. FailedPrecondition where the file system cannot.
absl::Status EnableWal(sqlite3* db, const std::string& path) {
  TWIST_ASSIGN_OR_RETURN(
      sqlite::Statement stmt,
      sqlite::Statement::Prepare(db, path, "enable WAL journal",
                                 "PRAGMA journal_mode=WAL"));
  TWIST_ASSIGN_OR_RETURN(const bool row, stmt.Step());
  const std::string mode = row ? stmt.Text(0) : std::string();
  if (mode != "wal") {
    return absl::FailedPreconditionError(absl::StrCat(
        "job database ", path, " could not switch to WAL journal mode (got '",
        mode,
        "'): the file system does not support it; put --state_dir on a "
        "local disk"));
  }
  return absl::OkStatus();
}

// Sets this connection's journal (WAL), synchronous mode and foreign keys.
absl::Status ConfigureConnection(sqlite3* db, const std::string& path) {
  TWIST_RETURN_IF_ERROR(EnableWal(db, path));
  // With WAL, NORMAL never corrupts the database and survives a crash of the
  // coordinator; only a power loss or OS crash can lose the last few commits.
  // Those are at most the latest round records, which a resumed job runs and
  // records again from its checkpoint, so the fsync per commit that FULL
  // costs buys nothing here.
  TWIST_RETURN_IF_ERROR(sqlite::Exec(db, path, "set synchronous mode",
                                     "PRAGMA synchronous=NORMAL"));
  return sqlite::Exec(db, path, "enable foreign keys",
                      "PRAGMA foreign_keys=ON");
}

// Brings the schema to kSchemaVersion in one transaction: creates it in a
// database without one, or migrates it from an older version.
absl::Status CreateOrMigrate(sqlite3* db, const std::string& path) {
  TWIST_ASSIGN_OR_RETURN(
      sqlite::Transaction txn,
      sqlite::Transaction::Begin(db, path, "create or migrate the schema"));
  // Another coordinator may have created or migrated the schema between the
  // caller's check and the write lock just taken.
  TWIST_ASSIGN_OR_RETURN(const int64_t locked,
                         sqlite::QueryInt64(db, path, "read schema version",
                                            "PRAGMA user_version"));
  if (locked == 0) {
    TWIST_RETURN_IF_ERROR(sqlite::Exec(db, path, "create schema", kSchemaSql));
  } else if (locked == 1) {
    TWIST_RETURN_IF_ERROR(MigrateFrom1(db, path));
  }
  TWIST_RETURN_IF_ERROR(
      sqlite::Exec(db, path, "set schema version",
                   absl::StrCat("PRAGMA user_version=", kSchemaVersion)));
  return txn.Commit();
}

}  // namespace

absl::Status InitializeSchema(sqlite3* db, const std::string& path,
                              int busy_timeout_ms) {
  sqlite3_extended_result_codes(db, 1);
  // Set before the first read: opening a file another process is writing
  // can meet a lock.
  const int rc = sqlite3_busy_timeout(db, busy_timeout_ms);
  if (rc != SQLITE_OK) return sqlite::Error(rc, db, path, "set busy timeout");
  TWIST_ASSIGN_OR_RETURN(const int64_t version, ReadUsableVersion(db, path));
  TWIST_RETURN_IF_ERROR(ConfigureConnection(db, path));
  if (version == kSchemaVersion) return absl::OkStatus();
  return CreateOrMigrate(db, path);
}

}  // namespace twist::coordinator
