#include "client/spec_input.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/job/job_fields.h"

namespace twist::client {
namespace {

// Collects text-format errors as "where:line:column: message".
class Errors : public google::protobuf::io::ErrorCollector {
 public:
  explicit Errors(std::string where) : where_(std::move(where)) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    errors_.push_back(
        absl::StrCat(where_, ":", line + 1, ":", column + 1, ": ", message));
  }
  void AddWarning(int, google::protobuf::io::ColumnNumber,
                  const std::string&) override {}
  std::string Text() const { return absl::StrJoin(errors_, "; "); }

 private:
  std::string where_;
  std::vector<std::string> errors_;
};

}  // namespace

absl::StatusOr<twist::v1::JobSpec> ParseSpec(const std::string& text, bool json,
                                             const std::string& where) {
  twist::v1::JobSpec spec;
  if (json) {
    auto status = google::protobuf::util::JsonStringToMessage(text, &spec);
    if (!status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where,
          ": not a valid JSON job spec: ", status.message().as_string()));
    }
    return spec;
  }
  google::protobuf::TextFormat::Parser parser;
  Errors errors(where);
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &spec)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a valid job spec (protobuf text format): ", errors.Text()));
  }
  return spec;
}

absl::StatusOr<twist::v1::JobSpec> LoadSpecFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read spec file ", path,
                                            ": no such file or not readable"));
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseSpec(text.str(), absl::EndsWith(path, ".json"), path);
}

const std::set<std::string>& SpecOptionNames() {
  static const auto* names = [] {
    auto* out = new std::set<std::string>;
    for (const common::JobField& field : common::JobFields()) {
      if (!field.option.empty()) out->emplace(field.option);
    }
    return out;
  }();
  return *names;
}

absl::Status ApplySpecOptions(const CommandLine& line,
                              twist::v1::JobSpec* spec) {
  for (const common::JobField& field : common::JobFields()) {
    const std::string option(field.option);
    if (option.empty() || !line.Has(option)) continue;
    std::string value = line.Get(option);
    // Paths that exist here are made absolute: the coordinator resolves
    // them in its own working folder.
    if (!field.path_hint.empty() && !value.empty() &&
        std::filesystem::exists(value)) {
      value = std::filesystem::absolute(value).lexically_normal().string();
    }
    TWIST_RETURN_IF_ERROR(common::SetFieldFromOption(field, value, spec));
  }
  return absl::OkStatus();
}

}  // namespace twist::client
