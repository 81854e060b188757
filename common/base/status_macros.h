// Early-return helpers for absl::Status and absl::StatusOr. The packaged Abseil
// (20220623) has no public RETURN_IF_ERROR / ASSIGN_OR_RETURN, so the project
// carries this small pair.
#ifndef TWIST_COMMON_BASE_STATUS_MACROS_H_
#define TWIST_COMMON_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Evaluates `expr` (an absl::Status) and returns it from the enclosing
// function when it is not OK.
#define TWIST_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::absl::Status twist_status_ = (expr);         \
    if (!twist_status_.ok()) return twist_status_; \
  } while (false)

#define TWIST_STATUS_CONCAT_INNER_(a, b) a##b
#define TWIST_STATUS_CONCAT_(a, b) TWIST_STATUS_CONCAT_INNER_(a, b)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status, on
// success moves the value into `lhs` (which may be a declaration).
#define TWIST_ASSIGN_OR_RETURN(lhs, rexpr) \
  TWIST_ASSIGN_OR_RETURN_IMPL_(            \
      TWIST_STATUS_CONCAT_(twist_statusor_, __LINE__), lhs, rexpr)

#define TWIST_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // TWIST_COMMON_BASE_STATUS_MACROS_H_
