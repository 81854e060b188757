#include "client/command_line.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/job/job_fields.h"

namespace twist::client {
namespace {

// Edit distance, for "did you mean" suggestions.
size_t Distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min(
          {row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// Options that take no value: "--watch 3" must leave 3 as an argument. The
// job spec's bool fields (--capacity_weighted, --outer_heavy_ball) are
// switches too.
bool IsSwitch(const std::string& key) {
  return key == "json" || key == "strip_tags" || key == "watch" ||
         key == "help" || key == "correction" || common::IsSwitchOption(key);
}

}  // namespace

std::string CommandLine::Get(const std::string& key,
                             const std::string& fallback) const {
  auto it = options.find(key);
  return it == options.end() ? fallback : it->second;
}

absl::StatusOr<double> CommandLine::GetDouble(const std::string& key,
                                              double fallback) const {
  auto it = options.find(key);
  if (it == options.end()) return fallback;
  double v = 0;
  if (!absl::SimpleAtod(it->second, &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", key, "=", it->second, " is not a number"));
  }
  return v;
}

absl::StatusOr<int64_t> CommandLine::GetInt(const std::string& key,
                                            int64_t fallback) const {
  auto it = options.find(key);
  if (it == options.end()) return fallback;
  int64_t v = 0;
  if (!absl::SimpleAtoi(it->second, &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", key, "=", it->second, " is not an integer"));
  }
  return v;
}

absl::StatusOr<bool> CommandLine::GetBool(const std::string& key,
                                          bool fallback) const {
  auto it = options.find(key);
  if (it == options.end()) return fallback;
  bool v = false;
  if (!absl::SimpleAtob(it->second, &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", key, "=", it->second, " is not true or false"));
  }
  return v;
}

absl::StatusOr<CommandLine> ParseCommandLine(
    const std::vector<std::string>& args) {
  CommandLine line;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (absl::StartsWith(arg, "--") && arg.size() > 2) {
      std::string key = arg.substr(2), value = "true";
      const size_t eq = key.find('=');
      if (eq != std::string::npos) {
        value = key.substr(eq + 1);
        key = key.substr(0, eq);
      } else if (i + 1 < args.size() && !absl::StartsWith(args[i + 1], "--") &&
                 !IsSwitch(key)) {
        value = args[++i];  // "--key value"
      }
      if (key == "coordinator") {
        line.coordinator = value;
      } else if (key == "token_file") {
        line.security.token_file = value;
      } else if (key == "tls_ca") {
        line.security.tls_ca_file = value;
      } else if (key == "tls_cert") {
        line.security.tls_cert_file = value;
      } else if (key == "tls_key") {
        line.security.tls_key_file = value;
      } else {
        line.options[key] = value;
      }
    } else if (line.command.empty()) {
      line.command = arg;
    } else {
      line.positional.push_back(arg);
    }
  }
  if (line.command.empty()) {
    return absl::InvalidArgumentError("no command given: try `twistctl help`");
  }
  return line;
}

absl::Status CheckOptions(const CommandLine& line,
                          const std::set<std::string>& allowed) {
  for (const auto& [key, value] : line.options) {
    if (allowed.count(key)) continue;
    std::string best;
    size_t best_distance = 3;  // suggest only near misses
    for (const auto& a : allowed) {
      const size_t d = Distance(key, a);
      if (d < best_distance) {
        best = a;
        best_distance = d;
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown option --", key, " for `twistctl ", line.command, "`",
        best.empty() ? "" : absl::StrCat(": did you mean --", best, "?")));
  }
  return absl::OkStatus();
}

}  // namespace twist::client
