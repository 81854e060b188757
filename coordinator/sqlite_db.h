// A small RAII layer over SQLite's C API for the job store: prepared
// statements, write transactions, and SQLite result codes mapped to the most
// specific absl::Status with what to do about them. Every error names the
// operation and the database file.
#ifndef TWIST_COORDINATOR_SQLITE_DB_H_
#define TWIST_COORDINATOR_SQLITE_DB_H_

#include <sqlite3.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/base/status_macros.h"

namespace twist::coordinator::sqlite {

// Turns an SQLite result code into the most specific Status, with what to do
// about it. `db` may be null (then only the code's generic text is known).
absl::Status Error(int rc, sqlite3* db, absl::string_view path,
                         absl::string_view operation);

// A prepared statement, finalized when it goes out of scope. Binding errors
// are kept and reported by the next Step(), so call sites bind without
// checking each call.
class Statement {
 public:
  static absl::StatusOr<Statement> Prepare(sqlite3* db, absl::string_view path,
                                           absl::string_view operation,
                                           absl::string_view sql) {
    sqlite3_stmt* stmt = nullptr;
    const int rc =
        sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt,
                           /*pzTail=*/nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return Error(rc, db, path, operation);
    }
    return Statement(db, stmt, path, operation);
  }

  Statement(Statement&& other) noexcept
      : db_(other.db_),
        stmt_(std::exchange(other.stmt_, nullptr)),
        path_(other.path_),
        operation_(other.operation_),
        bind_status_(std::move(other.bind_status_)) {}
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  // Parameters are numbered from 1, as in SQLite.
  void BindInt64(int index, int64_t value) {
    Check(sqlite3_bind_int64(stmt_, index, value));
  }
  // NaN becomes NULL (SQLite would store it as NULL anyway; this says so).
  void BindDouble(int index, double value) {
    if (std::isnan(value)) {
      BindNull(index);
    } else {
      Check(sqlite3_bind_double(stmt_, index, value));
    }
  }
  // 0 becomes NULL: for timestamps that are not set yet.
  void BindTimeOrNull(int index, double value) {
    if (value == 0.0) {
      BindNull(index);
    } else {
      BindDouble(index, value);
    }
  }
  void BindNull(int index) { Check(sqlite3_bind_null(stmt_, index)); }
  void BindText(int index, absl::string_view value) {
    Check(sqlite3_bind_text64(stmt_, index, value.data(), value.size(),
                              SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  void BindBlob(int index, absl::string_view value) {
    // A zero-length blob binds as an empty blob, not NULL, only with a
    // non-null pointer.
    Check(sqlite3_bind_blob64(stmt_, index, value.empty() ? "" : value.data(),
                              value.size(), SQLITE_TRANSIENT));
  }

  // Runs the statement one step: true with a row to read, false when done.
  absl::StatusOr<bool> Step() {
    TWIST_RETURN_IF_ERROR(bind_status_);
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return Error(rc, db_, path_, operation_);
  }

  // Runs the statement to completion, ignoring any rows.
  absl::Status Run() {
    while (true) {
      TWIST_ASSIGN_OR_RETURN(const bool row, Step());
      if (!row) return absl::OkStatus();
    }
  }

  // Columns are numbered from 0, as in SQLite. NULL reads as 0 or empty.
  bool IsNull(int column) const {
    return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
  }
  int64_t Int64(int column) const {
    return sqlite3_column_int64(stmt_, column);
  }
  double Double(int column) const {
    return sqlite3_column_double(stmt_, column);
  }
  std::string Text(int column) const {
    const unsigned char* text = sqlite3_column_text(stmt_, column);
    if (text == nullptr) return std::string();
    return std::string(
        reinterpret_cast<const char*>(text),
        static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
  }
  std::string Blob(int column) const {
    const void* blob = sqlite3_column_blob(stmt_, column);
    if (blob == nullptr) return std::string();
    return std::string(
        static_cast<const char*>(blob),
        static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
  }

  absl::string_view operation() const { return operation_; }

 private:
  Statement(sqlite3* db, sqlite3_stmt* stmt, absl::string_view path,
            absl::string_view operation)
      : db_(db), stmt_(stmt), path_(path), operation_(operation) {}

  void Check(int rc) {
    if (rc != SQLITE_OK && bind_status_.ok()) {
      bind_status_ = Error(rc, db_, path_, operation_);
    }
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  std::string path_;
  std::string operation_;
  absl::Status bind_status_;
};

// Runs SQL without parameters or results (one or more statements).
absl::Status Exec(sqlite3* db, absl::string_view path,
                  absl::string_view operation, const std::string& sql);

// A write transaction, rolled back when it goes out of scope uncommitted.
// BEGIN IMMEDIATE takes the write lock at once, so a busy database fails (or
// waits out the busy timeout) at the start instead of half-way through.
class Transaction {
 public:
  static absl::StatusOr<Transaction> Begin(sqlite3* db, absl::string_view path,
                                           absl::string_view operation) {
    TWIST_RETURN_IF_ERROR(
        Exec(db, path, absl::StrCat(operation, " (begin)"), "BEGIN IMMEDIATE"));
    return Transaction(db, path, operation);
  }

  Transaction(Transaction&& other) noexcept
      : db_(std::exchange(other.db_, nullptr)),
        path_(std::move(other.path_)),
        operation_(std::move(other.operation_)) {}
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  ~Transaction() {
    // A failed ROLLBACK can only mean SQLite already rolled back (after
    // SQLITE_FULL, SQLITE_IOERR, ...); nothing is left to undo.
    if (db_ != nullptr && !sqlite3_get_autocommit(db_)) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }

  absl::Status Commit() {
    TWIST_RETURN_IF_ERROR(
        Exec(db_, path_, absl::StrCat(operation_, " (commit)"), "COMMIT"));
    db_ = nullptr;
    return absl::OkStatus();
  }

 private:
  Transaction(sqlite3* db, absl::string_view path, absl::string_view operation)
      : db_(db), path_(path), operation_(operation) {}

  sqlite3* db_;  // null once committed
  std::string path_;
  std::string operation_;
};

// The first column of the first row of `sql`, as an integer.
absl::StatusOr<int64_t> QueryInt64(sqlite3* db, absl::string_view path,
                                   absl::string_view operation,
                                   absl::string_view sql);

}  // namespace twist::coordinator::sqlite

#endif  // TWIST_COORDINATOR_SQLITE_DB_H_
