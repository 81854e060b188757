// The coordinator's durable job store: jobs, their specs and state, and one
// record per finished round, in an SQLite database (`<state_dir>/jobs.db`).
// Checkpoints live beside it as files; this store
// only remembers how far each job got, so that a restarted coordinator can
// find its unfinished jobs and resume them.
//
// Layout: see coordinator/job_store_schema.h (versioned, with migrations
// from every earlier version).
//
// One process (the coordinator) is expected to write the file; readers in
// other processes (the sqlite3 shell, backups) are fine thanks to WAL.
#ifndef TWIST_COORDINATOR_JOB_STORE_H_
#define TWIST_COORDINATOR_JOB_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "twist/v1/job.pb.h"

struct sqlite3;

namespace twist::coordinator {

// Thread-safe: every method may be called from any thread; calls are
// serialized on one SQLite connection.
//
// Errors common to every method: an SQLite failure becomes a Status naming
// the operation, the file and SQLite's message. DataLoss for a damaged file
// (or a stored blob that no longer parses), Unavailable when another process
// holds the lock past the busy timeout or the disk reports an I/O error,
// ResourceExhausted for a full disk, FailedPrecondition when the file cannot
// be opened or written.
class JobStore {
 public:
  // How long a statement waits for another process's lock before failing
  // with Unavailable.
  static constexpr int kBusyTimeoutMs = 5000;

  // Opens the database at `path`, creating the file and the schema if absent.
  // The folder must exist. Errors: InvalidArgument for an empty path;
  // DataLoss for a file that is not an SQLite database or is damaged;
  // FailedPrecondition for a file that cannot be opened, an SQLite database
  // of some other program, a schema newer than kSchemaVersion
  // (job_store_schema.h: written by a newer coordinator), or a file system without WAL support. A failed Open
  // leaves an existing file as it was.
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(
      const std::string& path);

  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;
  ~JobStore();

  // The file this store was opened on.
  const std::string& path() const { return path_; }

  // Adds a job in state QUEUED at round 0 and returns its id (positive, never
  // reused, larger than every earlier id). `spec` is stored as given;
  // defaults and validation are the caller's.
  absl::StatusOr<int64_t> CreateJob(const twist::v1::JobSpec& spec,
                                    double created_at);

  // Overwrites the state, reason, round, started_at, finished_at and
  // parameters of job `job.id()` with `job`'s; its spec, created_at and rounds
  // are left alone. Errors: NotFound for an unknown id; InvalidArgument for a
  // state that is unset or not a JobState.
  absl::Status UpdateJob(const twist::v1::Job& job);

  // Stores `record` as round `record.round()` of job `job_id` and sets the
  // job's round to it, in one transaction. Rounds >= record.round() already
  // stored are deleted first: a resumed job runs them again, so the history
  // never holds duplicated or stale rounds. Errors: NotFound for an unknown
  // job; InvalidArgument for a negative round.
  absl::Status RecordRound(int64_t job_id,
                           const twist::v1::RoundRecord& record);

  // Deletes the rounds after `keep_up_to_round` and sets the job's round to
  // it, in one transaction; used when a job resumes from the checkpoint taken
  // after that round. -1 deletes every round (a restart from scratch) and
  // sets the job's round to 0. Errors: NotFound for an unknown job;
  // InvalidArgument for keep_up_to_round < -1.
  absl::Status TruncateRounds(int64_t job_id, int32_t keep_up_to_round);

  // The job with id `id`, with its rounds in ascending order when
  // `include_rounds`. Errors: NotFound for an unknown id.
  absl::StatusOr<twist::v1::Job> GetJob(int64_t id, bool include_rounds);

  // The rounds of job `job_id` after `after_round`, ascending (none for an
  // unknown job). DataLoss for a stored record that does not parse.
  absl::StatusOr<std::vector<twist::v1::RoundRecord>> GetRounds(
      int64_t job_id, int32_t after_round);

  // Every job, newest (largest id) first, without rounds.
  absl::StatusOr<std::vector<twist::v1::Job>> ListJobs();

  // The jobs in state QUEUED, WAITING or RUNNING, oldest first, without
  // rounds: what a restarted coordinator must resume, in submission order.
  absl::StatusOr<std::vector<twist::v1::Job>> UnfinishedJobs();

 private:
  // Takes ownership of `db`, which may be a handle whose open failed.
  JobStore(std::string path, sqlite3* db);

  // Sets the connection up and creates or checks the schema.
  absl::Status Initialize();

  // Sets the job's round and deletes its rounds after `keep_up_to_round`,
  // inside the caller's transaction. NotFound for an unknown job.
  absl::Status SetRoundLocked(int64_t job_id, int32_t round,
                              int32_t keep_up_to_round,
                              const std::string& operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Appends the rounds of `job_id` after `after_round` to `out`.
  absl::Status ReadRoundsLocked(
      int64_t job_id, int32_t after_round,
      google::protobuf::RepeatedPtrField<twist::v1::RoundRecord>* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Reads jobs selected by `where_and_order` (SQL after the FROM clause,
  // without parameters).
  absl::StatusOr<std::vector<twist::v1::Job>> SelectJobs(
      const char* where_and_order, const char* operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  absl::Mutex mu_;
  sqlite3* const db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_JOB_STORE_H_
