// The job store's SQLite schema and its versions (PRAGMA user_version):
//
//   jobs(id, name, spec, state, reason, round, created_at, started_at,
//        finished_at, parameters, notice, checkpoint_round)
//     spec is a serialized twist.v1.JobSpec, state a twist.v1.JobState;
//     started_at and finished_at are NULL while 0 (not yet); checkpoint_round
//     is the round of the job's newest checkpoint (0: none yet, -1: unknown,
//     for jobs recorded before version 2).
//   rounds(job_id, round, record, train_loss, val_loss, bytes_sent,
//          bytes_received, duration_s, rejected), PRIMARY KEY(job_id, round)
//     record is a serialized twist.v1.RoundRecord and the source of truth;
//     the other columns copy it for ad-hoc queries with the sqlite3 shell
//     (train_loss NULL when NaN, val_loss NULL when not evaluated, rejected
//     the round's updates that were not merged).
//
// Versions: 1 had no checkpoint_round, and its first files no notice and no
// rejected either (they were added without a new version). 2 is the above.
// Opening a file of an older version migrates it in one transaction.
#ifndef TWIST_COORDINATOR_JOB_STORE_SCHEMA_H_
#define TWIST_COORDINATOR_JOB_STORE_SCHEMA_H_

#include <sqlite3.h>

#include <string>

#include "absl/status/status.h"

namespace twist::coordinator {

// The schema version this code writes and reads.
inline constexpr int kSchemaVersion = 2;

// Sets up a freshly opened connection (busy timeout, WAL, synchronous mode,
// foreign keys) and creates the schema in an empty file or migrates an older
// one. Nothing is written before the version and ownership checks pass, so a
// foreign or newer file is left exactly as it was: FailedPrecondition for a
// database of another program or a newer schema, DataLoss for a file that is
// not a database; other errors as coordinator/sqlite_db.h maps them.
absl::Status InitializeSchema(sqlite3* db, const std::string& path,
                              int busy_timeout_ms);

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_JOB_STORE_SCHEMA_H_
