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
#include "absl/strings/str_split.h"

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

// Option name -> field path in the spec.
const std::vector<std::pair<std::string, std::string>>& OptionFields() {
  static const auto* fields =
      new std::vector<std::pair<std::string, std::string>>{
          {"name", "name"},
          {"data", "data.path"},
          {"content_hash", "data.content_hash"},
          {"mode", "mode"},
          {"rounds", "rounds"},
          {"local_steps", "local_steps"},
          {"batch_size", "batch_size"},
          {"seed", "seed"},
          {"n_layer", "model.n_layer"},
          {"n_head", "model.n_head"},
          {"n_embd", "model.n_embd"},
          {"block_size", "model.block_size"},
          {"vocab_size", "model.vocab_size"},
          {"activation", "model.activation"},
          {"init_from", "init_from"},
          {"lr", "optimizer.learning_rate"},
          {"min_lr_ratio", "optimizer.min_lr_ratio"},
          {"warmup_steps", "optimizer.warmup_steps"},
          {"weight_decay", "optimizer.weight_decay"},
          {"beta1", "optimizer.beta1"},
          {"beta2", "optimizer.beta2"},
          {"grad_clip", "optimizer.grad_clip"},
          {"heads_per_worker", "heads_per_worker"},
          {"ffn_columns_per_worker", "ffn_columns_per_worker"},
          {"keep_ratio", "keep_ratio"},
          {"capacity_weighted", "capacity_weighted"},
          {"scaling", "scaling"},
          {"eval_every", "eval_every"},
          {"eval_batches", "eval_batches"},
          {"checkpoint_every", "checkpoint_every"},
          {"min_workers", "min_workers"},
          {"max_workers", "max_workers"},
          {"round_deadline_s", "round_deadline_s"},
          {"deadline_factor", "deadline_factor"},
          {"deadline_floor_s", "deadline_floor_s"},
          {"outer_lr", "outer_learning_rate"},
          {"outer_momentum", "outer_momentum"},
          {"transport_dtype", "transport_dtype"},
          {"compute_dtype", "compute_dtype"},
          {"optimizer_state", "optimizer.state"},
          {"deal", "deal"},
          {"outer_heavy_ball", "outer_heavy_ball"},
      };
  return *fields;
}

// Short enum spellings users type on a command line.
std::string EnumValue(const std::string& option, const std::string& value) {
  if (option == "mode") {
    if (value == "twist") return "MODE_TWIST";
    if (value == "local_sgd") return "MODE_LOCAL_SGD";
  }
  if (option == "transport_dtype") {
    if (value == "float32") return "TRANSPORT_DTYPE_FLOAT32";
    if (value == "bfloat16") return "TRANSPORT_DTYPE_BFLOAT16";
  }
  if (option == "compute_dtype") {
    if (value == "float32") return "COMPUTE_DTYPE_FLOAT32";
    if (value == "bfloat16") return "COMPUTE_DTYPE_BFLOAT16";
  }
  if (option == "optimizer_state") {
    if (value == "fresh") return "OPTIMIZER_STATE_FRESH";
    if (value == "worker") return "OPTIMIZER_STATE_WORKER";
    if (value == "coordinator") return "OPTIMIZER_STATE_COORDINATOR";
  }
  if (option == "activation") {
    if (value == "gelu") return "ACTIVATION_GELU";
    if (value == "gelu_tanh") return "ACTIVATION_GELU_TANH";
  }
  if (option == "deal") {
    if (value == "random") return "DEAL_RANDOM";
    if (value == "rolling") return "DEAL_ROLLING";
  }
  if (option == "scaling") {
    if (value == "inverse_keep_ratio") return "SCALING_INVERSE_KEEP_RATIO";
    if (value == "none") return "SCALING_NONE";
    if (value == "correction") return "SCALING_CORRECTION";
  }
  return value;
}

// Quotes a string value for text format.
std::string Quote(const std::string& value) {
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

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
    for (const auto& [option, field] : OptionFields()) out->insert(option);
    return out;
  }();
  return *names;
}

absl::Status ApplySpecOptions(const CommandLine& line,
                              twist::v1::JobSpec* spec) {
  for (const auto& [option, field] : OptionFields()) {
    if (!line.Has(option)) continue;
    std::string value = line.Get(option);
    // Paths that exist here are made absolute: the coordinator resolves
    // them in its own working folder.
    if ((option == "data" || option == "init_from") && !value.empty() &&
        std::filesystem::exists(value)) {
      value = std::filesystem::absolute(value).lexically_normal().string();
    }
    const bool is_string = option == "name" || option == "data" ||
                           option == "content_hash" || option == "init_from";
    // "model.n_layer" with 4 -> "model { n_layer: 4 }"
    std::vector<std::string> parts = absl::StrSplit(field, '.');
    std::string text =
        absl::StrCat(parts.back(), ": ",
                     is_string ? Quote(value) : EnumValue(option, value));
    for (int i = static_cast<int>(parts.size()) - 2; i >= 0; --i) {
      text = absl::StrCat(parts[i], " { ", text, " }");
    }
    google::protobuf::TextFormat::Parser parser;
    Errors errors("--" + option);
    parser.RecordErrorsTo(&errors);
    if (!parser.MergeFromString(text, spec)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", option, "=", value, " is not a valid value for ", field));
    }
  }
  return absl::OkStatus();
}

}  // namespace twist::client
