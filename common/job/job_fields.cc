#include "common/job/job_fields.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace twist::common {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using twist::v1::JobSpec;

// Warm-up: 5% of all global steps, R * L.
void DefaultWarmup(JobSpec* spec) {
  const int64_t total =
      static_cast<int64_t>(spec->rounds()) * spec->local_steps();
  spec->mutable_optimizer()->set_warmup_steps(
      static_cast<int32_t>(std::max<int64_t>(0, total / 20)));
}

// The deadline floor never exceeds the round deadline.
void DefaultDeadlineFloor(JobSpec* spec) {
  spec->set_deadline_floor_s(std::min(10.0, spec->round_deadline_s()));
}

// Quotas: `capacity_weighted`, the field's first spelling, asks for the
// declared capacities.
void DefaultQuota(JobSpec* spec) {
  spec->set_quota(spec->capacity_weighted() ? twist::v1::QUOTA_DECLARED
                                            : twist::v1::QUOTA_EQUAL);
}

// The outer step in twist mode is Nesterov's, the best recipe measured
// (docs/job-spec.md, "The default recipe"); local_sgd, the data-parallel
// baseline, averages plainly unless the spec asks for DiLoCo's step. Both
// step with learning rate 1.
constexpr double kTwistOuterMomentum = 0.7;

void DefaultOuterMomentum(JobSpec* spec) {
  spec->set_outer_momentum(
      spec->mode() == twist::v1::MODE_LOCAL_SGD ? 0.0 : kTwistOuterMomentum);
}

// The job, its model and its data.
std::vector<JobField> WhatAndModelFields() {
  // clang-format off
  return {
    {"name", "name", "\"job\"", nullptr, "", {}, "",
     "shown in lists and metrics"},
    {"mode", "mode", "MODE_TWIST", nullptr, "",
     {{"twist", "MODE_TWIST"}, {"local_sgd", "MODE_LOCAL_SGD"}}, "",
     "subnetworks, or the whole model on every worker (baseline)"},
    {"model.n_layer", "n_layer", "4", nullptr, "", {}, "", "layers"},
    {"model.n_head", "n_head", "4", nullptr, "", {}, "",
     "heads per layer; head width is `n_embd / n_head`"},
    {"model.n_embd", "n_embd", "128", nullptr, "", {}, "",
     "width C; the FFN is 4C wide"},
    {"model.block_size", "block_size", "128", nullptr, "", {}, "",
     "context T"},
    {"model.vocab_size", "vocab_size", "", nullptr, "the dataset's", {}, "",
     "at least the dataset's, at most 65536; larger pads the embedding "
     "(GPT-2's 50257 to 50304, a multiple of 64, multiplies faster) and the "
     "padded ids' logits are masked: never sampled, never in the loss"},
    {"model.activation", "activation", "", nullptr, "`gelu` (or init_from's)",
     {{"gelu", "ACTIVATION_GELU"}, {"gelu_tanh", "ACTIVATION_GELU_TANH"}}, "",
     "the FFN's GELU: exact (nanoGPT) or the tanh approximation (GPT-2); "
     "exports record it as `twist.activation`"},
    {"init_from", "init_from", "", nullptr, "", {}, "FILE",
     "start from these weights instead of a seeded initialisation (below)"},
    {"init_from_sha256", "", "", nullptr, "the file's", {}, "",
     "SHA-256 of `init_from`, recorded at submit: a restarted coordinator "
     "starts from the same weights or fails the job saying the file changed"},
    {"data.path", "data", "", nullptr, "(required)", {}, "DIR",
     "folder from `twistctl prepare`, on every machine"},
    {"data.content_hash", "content_hash", "", nullptr, "the dataset's", {}, "",
     "workers refuse a dataset with another hash"},
    {"data.tokenizer", "", "", nullptr, "the dataset's", {}, "",
     "filled in from `meta.json` at submit; exports record it "
     "(`twist.tokenizer`)"},
    {"data.vocab_size", "", "", nullptr, "the dataset's", {}, "",
     "filled in from `meta.json` at submit"},
  };
  // clang-format on
}

// Local training: the schedule and AdamW.
std::vector<JobField> TrainingFields() {
  // clang-format off
  return {
    {"rounds", "rounds", "20", nullptr, "", {}, "", "R"},
    {"local_steps", "local_steps", "20", nullptr, "", {}, "",
     "L, AdamW steps per worker per round"},
    {"batch_size", "batch_size", "16", nullptr, "", {}, "",
     "sequences per step"},
    {"optimizer.learning_rate", "lr", "1e-3", nullptr, "", {}, "",
     "peak learning rate"},
    {"optimizer.min_lr_ratio", "min_lr_ratio", "0.1", nullptr, "", {}, "",
     "cosine floor, as a fraction of the peak; 0 decays to zero"},
    {"optimizer.warmup_steps", "warmup_steps", "", DefaultWarmup,
     "5% of R·L", {}, "", "linear warm-up, in global steps; 0: none"},
    {"optimizer.weight_decay", "weight_decay", "0.1", nullptr, "", {}, "",
     "AdamW's, on matrices and embeddings; 0: none"},
    {"optimizer.beta1", "beta1", "0.9", nullptr, "", {}, "",
     "AdamW's first-moment decay"},
    {"optimizer.beta2", "beta2", "0.95", nullptr, "", {}, "",
     "AdamW's second-moment decay"},
    {"optimizer.grad_clip", "grad_clip", "1.0", nullptr, "", {}, "",
     "global norm; 0 or negative disables"},
    {"seed", "seed", "1", nullptr, "", {}, "",
     "model init, partitions and batches"},
  };
  // clang-format on
}

// Subnetworks, evaluation, checkpoints and workers.
std::vector<JobField> SubnetworkFields() {
  // clang-format off
  return {
    {"heads_per_worker", "heads_per_worker", "", nullptr, "half of each layer", {}, "",
     "heads of each layer per worker"},
    {"ffn_columns_per_worker", "ffn_columns_per_worker", "", nullptr,
     "half of each layer", {}, "", "FFN columns of each layer per worker"},
    {"keep_ratio", "keep_ratio", "", nullptr, "", {}, "",
     "fraction of each layer's units per worker, used when the counts are 0"},
    {"capacity_weighted", "capacity_weighted", "false", nullptr, "", {}, "",
     "the first spelling of `quota: declared`"},
    {"quota", "quota", "", DefaultQuota,
     "`equal` (`declared` with `capacity_weighted`)",
     {{"equal", "QUOTA_EQUAL"}, {"declared", "QUOTA_DECLARED"},
      {"learned", "QUOTA_LEARNED"}}, "",
     "units per worker: the same for all, in proportion to the workers' "
     "`--capacity`, or to their speeds as measured over the last rounds "
     "([unequal workers](#unequal-workers))"},
    {"quota_in", "quota_in", "QUOTA_IN_UNITS", nullptr, "`units`",
     {{"units", "QUOTA_IN_UNITS"}, {"local_steps", "QUOTA_IN_LOCAL_STEPS"}}, "",
     "what an unequal quota shares out: units (a slower worker holds a "
     "narrower subnetwork) or local steps (the same units, fewer steps)"},
    {"scaling", "scaling", "SCALING_INVERSE_KEEP_RATIO", nullptr, "",
     {{"inverse_keep_ratio", "SCALING_INVERSE_KEEP_RATIO"},
      {"none", "SCALING_NONE"},
      {"correction", "SCALING_CORRECTION"}}, "",
     "scale a subnetwork's partial sums by k/m; `none`; or `correction`: add "
     "the missing units' mean contribution to the output bias (below)"},
    {"eval_every", "eval_every", "5", nullptr, "", {}, "",
     "rounds between evaluations (also round 0 and the last)"},
    {"eval_batches", "eval_batches", "8", nullptr, "", {}, "",
     "validation batches per evaluation"},
    {"checkpoint_every", "checkpoint_every", "10", nullptr, "", {}, "",
     "rounds between checkpoints; -1 never"},
    {"min_workers", "min_workers", "1", nullptr, "", {}, "",
     "the job waits until this many workers are live"},
    {"max_workers", "max_workers", "0", nullptr, "0 (all)", {}, "",
     "workers used per round"},
    {"round_deadline_s", "round_deadline_s", "600", nullptr, "", {}, "",
     "the longest a round waits for updates (the limit of the first round)"},
    {"deadline_factor", "deadline_factor", "3", nullptr, "", {}, "",
     "later rounds wait this many times the median update time of recent "
     "rounds ..."},
    {"deadline_floor_s", "deadline_floor_s", "", DefaultDeadlineFloor,
     "10 (at most `round_deadline_s`)", {}, "", "... but at least this long"},
  };
  // clang-format on
}

// How rounds keep state, deal units, merge and move tensors.
std::vector<JobField> RoundFields() {
  // clang-format off
  return {
    {"optimizer.state", "optimizer_state", "OPTIMIZER_STATE_WORKER", nullptr,
     "",
     {{"fresh", "OPTIMIZER_STATE_FRESH"},
      {"worker", "OPTIMIZER_STATE_WORKER"},
      {"coordinator", "OPTIMIZER_STATE_COORDINATOR"}}, "",
     "where AdamW's moments and step counts live between rounds (below)"},
    {"deal", "deal", "DEAL_ROLLING", nullptr, "",
     {{"random", "DEAL_RANDOM"}, {"rolling", "DEAL_ROLLING"}}, "",
     "a window of consecutive units that moves by one a round (the default "
     "recipe), or a fresh random deal of units every round"},
    {"outer_learning_rate", "outer_lr", "1", nullptr, "", {}, "",
     "the coordinator's step on the merged pseudo-gradient (DiLoCo's outer "
     "optimizer; [the default recipe](#the-default-recipe))"},
    {"outer_momentum", "outer_momentum", "", DefaultOuterMomentum,
     "0.7 (0 in `local_sgd` mode)", {}, "",
     "its momentum, Nesterov's unless `outer_heavy_ball`; 0 with "
     "`outer_learning_rate` 1 is plain merging"},
    {"outer_heavy_ball", "outer_heavy_ball", "false", nullptr, "", {}, "",
     "classical momentum instead of Nesterov's"},
    {"transport_dtype", "transport_dtype", "TRANSPORT_DTYPE_FLOAT32", nullptr,
     "",
     {{"float32", "TRANSPORT_DTYPE_FLOAT32"},
      {"bfloat16", "TRANSPORT_DTYPE_BFLOAT16"}}, "",
     "the type tensors travel in, both ways; bfloat16 halves the bytes "
     "(workers still train in float32 unless `compute_dtype` says otherwise)"},
    {"compute_dtype", "compute_dtype", "COMPUTE_DTYPE_FLOAT32", nullptr, "",
     {{"float32", "COMPUTE_DTYPE_FLOAT32"},
      {"bfloat16", "COMPUTE_DTYPE_BFLOAT16"}}, "",
     "the workers' arithmetic: bfloat16 runs matrix products in bfloat16 "
     "under autocast, with float32 parameters, gradients and optimizer state "
     "([when to choose it](#compute-dtype))"},
    {"compression", "compression", "COMPRESSION_NONE", nullptr, "",
     {{"none", "COMPRESSION_NONE"}, {"int8", "COMPRESSION_INT8"},
      {"int4", "COMPRESSION_INT4"}, {"topk", "COMPRESSION_TOPK"}}, "",
     "how updates travel from workers to the coordinator, and the model to "
     "workers that hold most of it: whole, or as compressed changes with "
     "error feedback ([compression](#compression))"},
    {"topk_fraction", "topk_fraction", "0.02", nullptr, "", {}, "",
     "with `compression: topk`, the share of each 4096 entries sent"},
    {"overlap_steps", "overlap_steps", "0", nullptr, "", {}, "",
     "local steps of the next round a worker trains while the coordinator "
     "merges and deals, before the next assignment's weights arrive "
     "([overlapping rounds](#overlapping-rounds))"},
  };
  // clang-format on
}

std::vector<JobField> MakeJobFields() {
  std::vector<JobField> out;
  for (auto group : {WhatAndModelFields, TrainingFields, SubnetworkFields,
                     RoundFields}) {
    for (JobField& field : group()) out.push_back(std::move(field));
  }
  return out;
}

// The message holding the field at `path` and the field's descriptor, from
// `root` down through `submessage(message, field)`; null descriptor for an
// unknown path.
template <typename MessageT, typename Submessage>
std::pair<MessageT*, const FieldDescriptor*> FindLeaf(MessageT* root,
                                                      absl::string_view path,
                                                      Submessage submessage) {
  MessageT* message = root;
  std::vector<absl::string_view> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const FieldDescriptor* field =
        message->GetDescriptor()->FindFieldByName(std::string(parts[i]));
    if (field == nullptr) return {message, nullptr};
    if (i + 1 == parts.size()) return {message, field};
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      return {message, nullptr};
    }
    message = submessage(message, field);
  }
  return {message, nullptr};
}

// FindLeaf, creating the messages on the way.
std::pair<Message*, const FieldDescriptor*> MutableLeaf(Message* root,
                                                        absl::string_view path) {
  return FindLeaf(root, path, [](Message* m, const FieldDescriptor* f) {
    return m->GetReflection()->MutableMessage(m, f);
  });
}

std::pair<const Message*, const FieldDescriptor*> Leaf(const Message& root,
                                                       absl::string_view path) {
  return FindLeaf(&root, path, [](const Message* m, const FieldDescriptor* f) {
    return &m->GetReflection()->GetMessage(*m, f);
  });
}

// Parses one field's value in text format, quietly: the caller words the
// error.
bool ParseValue(const std::string& text, const FieldDescriptor* field,
                Message* message) {
  class Quiet : public google::protobuf::io::ErrorCollector {
   public:
    void AddError(int, google::protobuf::io::ColumnNumber,
                  const std::string&) override {}
  };
  Quiet quiet;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&quiet);
  return parser.ParseFieldValueFromString(text, field, message);
}

}  // namespace

const std::vector<JobField>& JobFields() {
  static const auto* fields = new std::vector<JobField>(MakeJobFields());
  return *fields;
}

const JobField* FindJobField(absl::string_view path) {
  for (const JobField& field : JobFields()) {
    if (field.path == path) return &field;
  }
  return nullptr;
}

const JobField* FindJobFieldByOption(absl::string_view option) {
  if (option.empty()) return nullptr;
  for (const JobField& field : JobFields()) {
    if (field.option == option) return &field;
  }
  return nullptr;
}

bool IsSwitchOption(absl::string_view option) {
  const JobField* field = FindJobFieldByOption(option);
  if (field == nullptr) return false;
  const twist::v1::JobSpec spec;
  const FieldDescriptor* leaf = Leaf(spec, field->path).second;
  return leaf != nullptr && leaf->cpp_type() == FieldDescriptor::CPPTYPE_BOOL;
}

bool IsFieldSet(const JobSpec& spec, const JobField& field) {
  auto [message, descriptor] = Leaf(spec, field.path);
  // For fields without presence, HasField is true when the value is not 0.
  return descriptor != nullptr &&
         message->GetReflection()->HasField(*message, descriptor);
}

JobSpec WithEveryFieldSet(const JobSpec& spec) {
  JobSpec out = spec;
  for (const JobField& field : JobFields()) {
    if (IsFieldSet(out, field)) continue;
    auto [message, descriptor] = MutableLeaf(&out, field.path);
    if (descriptor == nullptr || !descriptor->has_presence()) continue;
    const auto* reflection = message->GetReflection();
    switch (descriptor->cpp_type()) {
      case FieldDescriptor::CPPTYPE_BOOL:
        reflection->SetBool(message, descriptor, false);
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        reflection->SetDouble(message, descriptor, 0);
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        reflection->SetFloat(message, descriptor, 0);
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        reflection->SetInt32(message, descriptor, 0);
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        reflection->SetInt64(message, descriptor, 0);
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        reflection->SetUInt32(message, descriptor, 0);
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        reflection->SetUInt64(message, descriptor, 0);
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        reflection->SetEnumValue(message, descriptor, 0);
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        reflection->SetString(message, descriptor, "");
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        break;
    }
  }
  return out;
}

void ApplyDefaults(JobSpec* spec) {
  for (const JobField& field : JobFields()) {
    if (field.value.empty() && field.compute == nullptr) continue;
    if (IsFieldSet(*spec, field)) continue;
    if (field.compute != nullptr) {
      field.compute(spec);
      continue;
    }
    auto [message, descriptor] = MutableLeaf(spec, field.path);
    // Every entry's value parses (tests/job_fields_test.cc).
    if (descriptor != nullptr) {
      ParseValue(std::string(field.value), descriptor, message);
    }
  }
}

absl::Status SetFieldFromOption(const JobField& field, const std::string& value,
                                JobSpec* spec) {
  auto [message, descriptor] = MutableLeaf(spec, field.path);
  bool ok = descriptor != nullptr;
  if (ok && descriptor->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
    message->GetReflection()->SetString(message, descriptor, value);
  } else if (ok) {
    std::string text = value;
    for (const auto& [spelling, name] : field.choices) {
      if (spelling == value) text = std::string(name);
    }
    ok = ParseValue(text, descriptor, message);
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", field.option, "=", value, " is not a valid value for ",
        field.path));
  }
  return absl::OkStatus();
}

std::string OptionSpelling(const JobField& field) {
  if (field.option.empty()) return "";
  std::string out = absl::StrCat("--", field.option);
  if (!field.choices.empty()) {
    std::vector<absl::string_view> spellings;
    for (const auto& choice : field.choices) spellings.push_back(choice.first);
    absl::StrAppend(&out, "=", absl::StrJoin(spellings, "|"));
  } else if (!field.path_hint.empty()) {
    absl::StrAppend(&out, "=", field.path_hint);
  }
  return out;
}

std::string ShownDefault(const JobField& field) {
  if (!field.shown_default.empty()) return std::string(field.shown_default);
  for (const auto& [spelling, name] : field.choices) {
    if (name == field.value) return absl::StrCat("`", spelling, "`");
  }
  if (field.value.size() >= 2 && field.value.front() == '"') {
    return absl::StrCat("`", field.value.substr(1, field.value.size() - 2),
                        "`");
  }
  return std::string(field.value);
}

std::string JobFieldsMarkdownTable() {
  std::string out =
      "| field | `submit` option | default | meaning |\n|---|---|---|---|\n";
  for (const JobField& field : JobFields()) {
    const std::string option = OptionSpelling(field);
    const std::string cells[] = {
        absl::StrCat("`", field.path, "`"),
        option.empty()
            ? ""
            : absl::StrCat("`", absl::StrReplaceAll(option, {{"|", "\\|"}}),
                           "`"),
        ShownDefault(field), std::string(field.meaning)};
    out += "|";
    for (const std::string& cell : cells) {
      out += cell.empty() ? " |" : absl::StrCat(" ", cell, " |");
    }
    out += "\n";
  }
  return out;
}

std::string SpecOptionsUsage(int indent, int width) {
  const std::string margin(static_cast<size_t>(std::max(0, indent)), ' ');
  std::string out, line;
  for (const JobField& field : JobFields()) {
    const std::string option = OptionSpelling(field);
    if (option.empty()) continue;
    if (!line.empty() &&
        static_cast<int>(margin.size() + line.size() + 1 + option.size()) >
            width) {
      absl::StrAppend(&out, margin, line, "\n");
      line.clear();
    }
    line = line.empty() ? option : absl::StrCat(line, " ", option);
  }
  if (!line.empty()) absl::StrAppend(&out, margin, line, "\n");
  return out;
}

}  // namespace twist::common
