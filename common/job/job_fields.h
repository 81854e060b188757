// Every field of a job spec (proto/twist/v1/job.proto) in one table: where it
// is in the spec, its `twistctl submit` option, its default and what it means.
// ApplyDefaults, the client's option parsing, `twistctl help` and the table
// in docs/job-spec.md all come from it (tests/job_fields_test.cc checks the
// docs and the proto's comments against it), so a new field is one entry
// here, its line in the proto and its row in the docs.
#ifndef TWIST_COMMON_JOB_JOB_FIELDS_H_
#define TWIST_COMMON_JOB_JOB_FIELDS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "twist/v1/job.pb.h"

namespace twist::common {

struct JobField {
  // Where the field is: "rounds", "optimizer.learning_rate".
  absl::string_view path;
  // The `twistctl submit` option, without "--" ("lr"); empty: none.
  absl::string_view option;
  // The default as a protobuf text-format value ("1e-3", "MODE_TWIST",
  // "\"job\""), set by ApplyDefaults where the field is unset; empty: none,
  // or computed by `compute`.
  absl::string_view value;
  // A default that depends on other fields, applied in table order (after
  // the defaults of the entries above it); null: none.
  void (*compute)(twist::v1::JobSpec* spec) = nullptr;
  // The default as docs/job-spec.md shows it, where it is not simply `value`
  // ("5% of R·L", "the dataset's").
  absl::string_view shown_default;
  // Enums: the option's spelling of each value, {"twist", "MODE_TWIST"}.
  std::vector<std::pair<absl::string_view, absl::string_view>> choices;
  // A path on the submitting machine, made absolute there when it exists;
  // the word after "=" in the usage ("DIR", "FILE"). Empty: not a path.
  absl::string_view path_hint;
  // One line, as docs/job-spec.md shows it (markdown).
  absl::string_view meaning;
};

// Every field of JobSpec and its messages (model, data, optimizer), in the
// order of docs/job-spec.md's table.
const std::vector<JobField>& JobFields();
// The entry of a path or option; null when there is none.
const JobField* FindJobField(absl::string_view path);
const JobField* FindJobFieldByOption(absl::string_view option);

// Whether `option` (without "--") is the submit option of a bool field: it
// takes no value ("--capacity_weighted" alone means true).
bool IsSwitchOption(absl::string_view option);

// Whether the spec sets the field: has_X() for fields with presence (proto3
// optional), otherwise a non-zero, non-empty value.
bool IsFieldSet(const twist::v1::JobSpec& spec, const JobField& field);

// A copy of the spec with every unset field that has presence (proto3
// optional) set to its zero, which is what it reads as: for documents that
// show every field, such as the status JSON.
twist::v1::JobSpec WithEveryFieldSet(const twist::v1::JobSpec& spec);

// Fills every field left unset with its default. The dataset's vocabulary
// and hash are not known here: the coordinator's ResolveJobSpec fills those.
void ApplyDefaults(twist::v1::JobSpec* spec);

// Sets the field from the value of its `--option`, an option spelling of an
// enum (choices) or the value as protobuf text format writes it. Strings are
// taken as they are. InvalidArgument "--rounds=ten is not a valid value for
// rounds" otherwise.
absl::Status SetFieldFromOption(const JobField& field, const std::string& value,
                                twist::v1::JobSpec* spec);

// The option as users write it: "--lr", "--mode=twist|local_sgd",
// "--init_from=FILE"; empty for fields without one.
std::string OptionSpelling(const JobField& field);
// The default as docs/job-spec.md shows it: "20", "`twist`", "half of each layer".
std::string ShownDefault(const JobField& field);
// The field table of docs/job-spec.md, one row per field, with its header.
std::string JobFieldsMarkdownTable();
// The submit options for `twistctl help`: OptionSpelling of each, separated
// by spaces and wrapped to `width` columns, every line indented by `indent`.
std::string SpecOptionsUsage(int indent, int width);

}  // namespace twist::common

#endif  // TWIST_COMMON_JOB_JOB_FIELDS_H_
