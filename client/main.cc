// twistctl: prepares data, submits and watches jobs, exports and samples
// models. See `twistctl help`.
#include <cstdio>
#include <string>
#include <vector>

#include "client/command_line.h"
#include "client/commands.h"
#include "common/model/threads.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<twist::client::CommandLine> line =
      twist::client::ParseCommandLine(args);
  if (!line.ok() || line->command == "help" || line->options.count("help")) {
    std::fputs(twist::client::Usage(), line.ok() ? stdout : stderr);
    return line.ok() ? 0 : 2;
  }
  twist::common::ConfigureThreads(0);
  using Command = absl::Status (*)(const twist::client::CommandLine&);
  const std::pair<const char*, Command> commands[] = {
      {"prepare", twist::client::Prepare},   {"submit", twist::client::Submit},
      {"list", twist::client::List},         {"status", twist::client::Status},
      {"watch", twist::client::Watch},       {"cancel", twist::client::Cancel},
      {"workers", twist::client::Workers},   {"export", twist::client::Export},
      {"generate", twist::client::Generate},
  };
  for (const auto& [name, run] : commands) {
    if (line->command != name) continue;
    absl::Status status = run(*line);
    if (!status.ok()) {
      std::fprintf(stderr, "twistctl %s: %s\n", name,
                   std::string(status.message()).c_str());
      return 1;
    }
    return 0;
  }
  std::fprintf(stderr, "twistctl: unknown command '%s'\n\n%s",
               line->command.c_str(), twist::client::Usage());
  return 2;
}
