// The coordinator's incarnation: a number that grows every time a coordinator
// starts on a state directory. Every assignment carries it and every update
// must carry it back, so nothing from before a restart is ever merged.
#ifndef TWIST_COORDINATOR_INCARNATION_H_
#define TWIST_COORDINATOR_INCARNATION_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace twist::coordinator {

// Reads `<state_dir>/incarnation` (0 when absent), writes back one more
// (durably: temporary file, fsync, rename) and returns it.
absl::StatusOr<uint64_t> NextIncarnation(const std::string& state_dir);

}  // namespace twist::coordinator

#endif  // TWIST_COORDINATOR_INCARNATION_H_
