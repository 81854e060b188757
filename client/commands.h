// The commands of twistctl. Each takes the parsed command line, prints its
// result to stdout and returns a Status whose message twistctl prints on
// failure.
#ifndef TWIST_CLIENT_COMMANDS_H_
#define TWIST_CLIENT_COMMANDS_H_

#include "absl/status/status.h"
#include "client/command_line.h"

namespace twist::client {

absl::Status Prepare(const CommandLine& line);
absl::Status Submit(const CommandLine& line);
absl::Status List(const CommandLine& line);
absl::Status Status(const CommandLine& line);
absl::Status Watch(const CommandLine& line);
absl::Status Cancel(const CommandLine& line);
absl::Status Workers(const CommandLine& line);
absl::Status Export(const CommandLine& line);
absl::Status Generate(const CommandLine& line);

// The text of `twistctl help`.
const char* Usage();

}  // namespace twist::client

#endif  // TWIST_CLIENT_COMMANDS_H_
