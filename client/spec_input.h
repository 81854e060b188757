// Job specs as users write them: a file in protobuf text format (.textproto,
// .txtpb, .pbtxt) or JSON (.json), then `twistctl submit --option=value`
// overrides for the common fields. Errors name the file, line and column.
#ifndef TWIST_CLIENT_SPEC_INPUT_H_
#define TWIST_CLIENT_SPEC_INPUT_H_

#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "client/command_line.h"
#include "twist/v1/job.pb.h"

namespace twist::client {

// Parses spec text; `json` picks the format, `where` names the source.
absl::StatusOr<twist::v1::JobSpec> ParseSpec(const std::string& text, bool json,
                                             const std::string& where);

// Reads and parses a spec file (JSON when its name ends in .json).
// NotFound for a missing file, InvalidArgument for a malformed one.
absl::StatusOr<twist::v1::JobSpec> LoadSpecFile(const std::string& path);

// The submit options that set spec fields (--rounds, --lr, --n_layer, ...).
const std::set<std::string>& SpecOptionNames();

// Applies the spec options present in `line` to `spec`. InvalidArgument for
// a value of the wrong type ("--rounds=ten"). A relative --data path that
// exists here is made absolute (the coordinator has another working folder).
absl::Status ApplySpecOptions(const CommandLine& line,
                              twist::v1::JobSpec* spec);

}  // namespace twist::client

#endif  // TWIST_CLIENT_SPEC_INPUT_H_
