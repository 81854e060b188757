#include "coordinator/sqlite_db.h"

namespace twist::coordinator::sqlite {

absl::Status Error(int rc, sqlite3* db, absl::string_view path,
                         absl::string_view operation) {
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const std::string message = absl::StrCat(operation, " failed on ", path, ": ",
                                           detail, " (SQLite code ", rc, ")");
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(absl::StrCat(
          message,
          "; the file is damaged or not an SQLite database: move it aside "
          "(the coordinator then starts with no jobs) or restore a backup"));
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
      return absl::FailedPreconditionError(absl::StrCat(
          message,
          "; check that the state directory exists and that the coordinator "
          "may read and write it and the file"));
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(absl::StrCat(
          message,
          "; another process holds the database lock: stop any other "
          "coordinator using this state directory and retry"));
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(
          absl::StrCat(message, "; the disk is full: free space and retry"));
    case SQLITE_NOMEM:
      return absl::ResourceExhaustedError(
          absl::StrCat(message, "; the process is out of memory"));
    case SQLITE_IOERR:
      return absl::UnavailableError(absl::StrCat(
          message, "; the disk reported an I/O error: check it and retry"));
    default:
      return absl::InternalError(
          absl::StrCat(message, "; this is a bug in the job store"));
  }
}

absl::Status Exec(sqlite3* db, absl::string_view path,
                  absl::string_view operation, const std::string& sql) {
  const int rc = sqlite3_exec(db, sql.c_str(), /*callback=*/nullptr,
                              /*arg=*/nullptr, /*errmsg=*/nullptr);
  if (rc != SQLITE_OK) return Error(rc, db, path, operation);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> QueryInt64(sqlite3* db, absl::string_view path,
                                   absl::string_view operation,
                                   absl::string_view sql) {
  TWIST_ASSIGN_OR_RETURN(Statement stmt,
                         Statement::Prepare(db, path, operation, sql));
  TWIST_ASSIGN_OR_RETURN(const bool row, stmt.Step());
  if (!row) {
    return absl::InternalError(
        absl::StrCat(operation, " on ", path, ": no row came back"));
  }
  return stmt.Int64(0);
}

}  // namespace twist::coordinator::sqlite
