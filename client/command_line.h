// twistctl's command line: `twistctl [--coordinator=HOST:PORT] COMMAND [ARG]
// [--option=value ...]`, parsed without global flag state so every command
// checks its own options and a typo gets a message that names it.
#ifndef TWIST_CLIENT_COMMAND_LINE_H_
#define TWIST_CLIENT_COMMAND_LINE_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/rpc/security.h"

namespace twist::client {

struct CommandLine {
  std::string coordinator = "127.0.0.1:7070";
  // Global options, like --coordinator: --token_file, --tls_ca, --tls_cert,
  // --tls_key.
  common::ClientSecurity security;
  std::string command;
  std::vector<std::string> positional;         // after the command
  std::map<std::string, std::string> options;  // --key=value; --flag is "true"

  bool Has(const std::string& key) const { return options.count(key) > 0; }
  std::string Get(const std::string& key,
                  const std::string& fallback = "") const;
  // InvalidArgument naming the option when the value does not parse.
  absl::StatusOr<double> GetDouble(const std::string& key,
                                   double fallback) const;
  absl::StatusOr<int64_t> GetInt(const std::string& key,
                                 int64_t fallback) const;
  absl::StatusOr<bool> GetBool(const std::string& key, bool fallback) const;
};

// Splits argv. "--coordinator" may come before or after the command; "--key
// value" (without "=") is accepted for options that take a value (all but the
// switches --json, --strip_tags, --watch, --help, --correction and the job
// spec's bool fields, such as --capacity_weighted).
// InvalidArgument when there is no command.
absl::StatusOr<CommandLine> ParseCommandLine(
    const std::vector<std::string>& args);

// InvalidArgument naming the first option of `line` that `allowed` lacks,
// with the closest allowed spelling as a suggestion.
absl::Status CheckOptions(const CommandLine& line,
                          const std::set<std::string>& allowed);

}  // namespace twist::client

#endif  // TWIST_CLIENT_COMMAND_LINE_H_
