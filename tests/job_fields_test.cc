// Tests of the job fields' table (common/job/job_fields.h): it covers every
// field of the proto once; its defaults are what ApplyDefaults sets; and
// docs/job-spec.md and the comments of proto/twist/v1/job.proto say the same
// defaults, so neither can drift from the code.
#include "common/job/job_fields.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/job/round_options.h"
#include "gtest/gtest.h"

namespace twist::common {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using twist::v1::JobSpec;

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n');
}

std::string ReadSource(const std::string& relative) {
  std::ifstream in(std::string(TWIST_SOURCE_DIR) + "/" + relative);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Every scalar field of JobSpec and the messages in it, as "model.n_layer".
void LeafPaths(const google::protobuf::Descriptor* message,
               const std::string& prefix, std::vector<std::string>* out) {
  for (int i = 0; i < message->field_count(); ++i) {
    const FieldDescriptor* field = message->field(i);
    const std::string path = prefix + field->name();
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      LeafPaths(field->message_type(), path + ".", out);
    } else {
      out->push_back(path);
    }
  }
}

// The field's value in `spec` as text format prints it ("0.001",
// "MODE_TWIST", "\"job\"", "false"); empty for an unknown path.
std::string Printed(const JobSpec& spec, const std::string& path) {
  const Message* message = &spec;
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const FieldDescriptor* field =
        message->GetDescriptor()->FindFieldByName(parts[i]);
    if (field == nullptr) return "";
    if (i + 1 < parts.size()) {
      message = &message->GetReflection()->GetMessage(*message, field);
      continue;
    }
    std::string out;
    google::protobuf::TextFormat::PrintFieldValueToString(*message, field, -1,
                                                          &out);
    return out;
  }
  return "";
}

// Whether two printed values agree: numerically when both are numbers.
bool SameValue(const std::string& a, const std::string& b) {
  char* end_a = nullptr;
  char* end_b = nullptr;
  const double x = std::strtod(a.c_str(), &end_a);
  const double y = std::strtod(b.c_str(), &end_b);
  if (!a.empty() && !b.empty() && *end_a == '\0' && *end_b == '\0') {
    return x == y;
  }
  return a == b;
}

// What ApplyDefaults makes of an empty spec.
const JobSpec& Defaults() {
  static const JobSpec* spec = [] {
    auto* out = new JobSpec;
    ApplyDefaults(out);
    return out;
  }();
  return *spec;
}

// The value a default written in docs or comments stands for, as text
// format prints it; empty when it is not a single value. `word` is "20",
// "1e-3", "false", "`twist`", "\"job\"" or an enum value's name.
std::string DefaultWord(const JobField& field, std::string word) {
  if (word.size() >= 2 && word.front() == '`' && word.back() == '`') {
    word = word.substr(1, word.size() - 2);
    for (const auto& [spelling, name] : field.choices) {
      if (spelling == word) return std::string(name);
    }
    return absl::StrCat("\"", word, "\"");
  }
  return word;
}

TEST(JobFieldsTest, EveryFieldOfTheSpecHasExactlyOneEntry) {
  std::vector<std::string> paths;
  LeafPaths(JobSpec::descriptor(), "", &paths);
  std::map<std::string, int> entries, options;
  for (const JobField& field : JobFields()) {
    ++entries[std::string(field.path)];
    if (!field.option.empty()) ++options[std::string(field.option)];
    EXPECT_FALSE(field.meaning.empty()) << field.path;
  }
  for (const std::string& path : paths) {
    EXPECT_EQ(entries[path], 1)
        << path << " needs one entry in common/job/job_fields.cc";
  }
  EXPECT_EQ(entries.size(), paths.size()) << "an entry names no proto field";
  for (const auto& [option, count] : options) {
    EXPECT_EQ(count, 1) << "--" << option << " sets two fields";
  }
}

TEST(JobFieldsTest, DefaultsParseAndAreWhatApplyDefaultsSets) {
  for (const JobField& field : JobFields()) {
    const std::string path(field.path);
    if (field.value.empty()) continue;
    EXPECT_EQ(field.compute, nullptr) << path << ": a value or a computation";
    // A value that does not parse leaves the field unset, and so differs.
    EXPECT_TRUE(SameValue(Printed(Defaults(), path),
                          DefaultWord(field, std::string(field.value))))
        << path << ": ApplyDefaults sets " << Printed(Defaults(), path)
        << ", the table says " << field.value;
    for (const auto& [spelling, name] : field.choices) {
      EXPECT_NE(google::protobuf::DescriptorPool::generated_pool()
                    ->FindEnumValueByName("twist.v1." + std::string(name)),
                nullptr)
          << path << ": " << name;
    }
  }
  // Computed defaults, on the empty spec: 5% of 20 * 20 steps; 10 s.
  EXPECT_EQ(Defaults().optimizer().warmup_steps(), 20);
  EXPECT_EQ(Defaults().deadline_floor_s(), 10);
  // Without a literal default the field stays unset.
  EXPECT_EQ(Defaults().model().vocab_size(), 0);
  EXPECT_EQ(Defaults().model().activation(),
            twist::v1::ACTIVATION_UNSPECIFIED);
  EXPECT_EQ(Defaults().heads_per_worker(), 0);
  EXPECT_EQ(Defaults().data().path(), "");
}

TEST(JobFieldsTest, ExplicitZerosOfOptionalFieldsAreKept) {
  JobSpec zeros;
  auto* o = zeros.mutable_optimizer();
  o->set_min_lr_ratio(0);
  o->set_warmup_steps(0);
  o->set_weight_decay(0);
  o->set_beta1(0);
  o->set_beta2(0);
  o->set_grad_clip(0);
  zeros.set_seed(0);
  zeros.set_outer_momentum(0);
  zeros.set_capacity_weighted(false);
  zeros.set_outer_heavy_ball(false);
  const JobSpec before = zeros;
  ApplyDefaults(&zeros);
  EXPECT_EQ(zeros.optimizer().min_lr_ratio(), 0);
  EXPECT_EQ(zeros.optimizer().warmup_steps(), 0);
  EXPECT_EQ(zeros.optimizer().weight_decay(), 0);
  EXPECT_EQ(zeros.optimizer().beta1(), 0);
  EXPECT_EQ(zeros.optimizer().beta2(), 0);
  EXPECT_EQ(zeros.optimizer().grad_clip(), 0);
  EXPECT_EQ(zeros.seed(), 0u);
  EXPECT_TRUE(zeros.has_outer_momentum());
  EXPECT_EQ(zeros.rounds(), 20);  // the others still get theirs

  // Unset, they take their defaults, and the spec then says so.
  EXPECT_TRUE(Defaults().optimizer().has_weight_decay());
  EXPECT_EQ(Defaults().optimizer().weight_decay(), 0.1);
  EXPECT_EQ(Defaults().seed(), 1u);
  EXPECT_TRUE(Defaults().has_capacity_weighted());
  EXPECT_FALSE(Defaults().capacity_weighted());
  EXPECT_TRUE(Defaults().has_outer_momentum());
  EXPECT_EQ(Defaults().outer_momentum(), 0.7);

  // An option's 0 is an explicit 0 as well.
  JobSpec from_option;
  ASSERT_TRUE(SetFieldFromOption(*FindJobFieldByOption("weight_decay"), "0",
                                 &from_option)
                  .ok());
  EXPECT_TRUE(from_option.optimizer().has_weight_decay());
  ApplyDefaults(&from_option);
  EXPECT_EQ(from_option.optimizer().weight_decay(), 0);
}

TEST(JobFieldsTest, OptionsSetFieldsOrNameTheBadValue) {
  JobSpec spec;
  EXPECT_TRUE(
      SetFieldFromOption(*FindJobFieldByOption("mode"), "local_sgd", &spec)
          .ok());
  EXPECT_EQ(spec.mode(), twist::v1::MODE_LOCAL_SGD);
  EXPECT_TRUE(SetFieldFromOption(*FindJobFieldByOption("optimizer_state"),
                                 "OPTIMIZER_STATE_FRESH", &spec)
                  .ok());
  EXPECT_EQ(spec.optimizer().state(), twist::v1::OPTIMIZER_STATE_FRESH);
  EXPECT_TRUE(
      SetFieldFromOption(*FindJobFieldByOption("name"), "a \"b\" }", &spec)
          .ok());
  EXPECT_EQ(spec.name(), "a \"b\" }");
  const absl::Status bad =
      SetFieldFromOption(*FindJobFieldByOption("deal"), "sideways", &spec);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.message(), "--deal=sideways is not a valid value for deal");
  EXPECT_FALSE(
      SetFieldFromOption(*FindJobFieldByOption("rounds"), "3 4", &spec).ok());
  EXPECT_EQ(FindJobFieldByOption("learning_rate"), nullptr);
  EXPECT_EQ(FindJobFieldByOption("lr")->path, "optimizer.learning_rate");
  EXPECT_EQ(FindJobField("optimizer.learning_rate")->option, "lr");
}

TEST(JobFieldsTest, UsageListsEveryOptionWithinTheWidth) {
  const std::string usage = SpecOptionsUsage(6, 80);
  for (const std::string& line : Lines(usage)) {
    if (line.empty()) continue;
    EXPECT_LE(line.size(), 80u) << line;
    EXPECT_EQ(line.substr(0, 8), "      --") << line;
  }
  const std::vector<std::string> words =
      absl::StrSplit(usage, absl::ByAnyChar(" \n"), absl::SkipEmpty());
  const std::set<std::string> listed(words.begin(), words.end());
  size_t options = 0;
  for (const JobField& field : JobFields()) {
    if (field.option.empty()) continue;
    ++options;
    EXPECT_EQ(listed.count(OptionSpelling(field)), 1u) << field.option;
  }
  EXPECT_EQ(listed.size(), options);
  EXPECT_EQ(listed.count("--scaling=inverse_keep_ratio|none|correction"), 1u);
  EXPECT_EQ(listed.count("--init_from=FILE"), 1u);
}

// The table in docs/job-spec.md: from its header row to the first line that
// is not a row.
std::vector<std::string> DocsTable(const std::string& docs) {
  std::vector<std::string> rows;
  bool in_table = false;
  for (const std::string& line : Lines(docs)) {
    if (line.rfind("| field |", 0) == 0) in_table = true;
    if (!in_table) continue;
    if (line.empty() || line[0] != '|') break;
    rows.push_back(line);
  }
  return rows;
}

// The cells of a table row, trimmed; "\\|" is a "|" within a cell.
std::vector<std::string> Cells(const std::string& row) {
  std::vector<std::string> cells;
  std::string cell;
  for (size_t i = 1; i < row.size(); ++i) {
    if (row[i] == '|' && row[i - 1] != '\\') {
      cells.emplace_back(absl::StripAsciiWhitespace(cell));
      cell.clear();
    } else {
      cell += row[i];
    }
  }
  return cells;
}

TEST(JobFieldsDocsTest, TheTableInJobSpecMdIsTheFieldsTable) {
  const std::string docs = ReadSource("docs/job-spec.md");
  ASSERT_FALSE(docs.empty()) << "cannot read docs/job-spec.md";
  const std::vector<std::string> rows = DocsTable(docs);
  const std::vector<std::string> expected =
      absl::StrSplit(JobFieldsMarkdownTable(), '\n', absl::SkipEmpty());
  for (size_t i = 0; i < std::max(rows.size(), expected.size()); ++i) {
    EXPECT_EQ(i < rows.size() ? rows[i] : "(none)",
              i < expected.size() ? expected[i] : "(none)")
        << "row " << i << " of the table in docs/job-spec.md";
  }
  if (rows != expected) {
    ADD_FAILURE() << "docs/job-spec.md's table should read:\n"
                  << JobFieldsMarkdownTable();
  }
}

TEST(JobFieldsDocsTest, TheDefaultsInJobSpecMdAreWhatApplyDefaultsSets) {
  const std::vector<std::string> rows =
      DocsTable(ReadSource("docs/job-spec.md"));
  ASSERT_GT(rows.size(), 2u);
  const std::regex number(R"(^(-?[0-9][0-9.e+-]*)( .*)?$)");
  const std::regex single(R"(^(`[^`]+`|true|false)$)");
  int checked = 0;
  for (size_t i = 2; i < rows.size(); ++i) {
    const std::vector<std::string> cells = Cells(rows[i]);
    ASSERT_EQ(cells.size(), 4u) << rows[i];
    const std::string path(
        absl::StripSuffix(absl::StripPrefix(cells[0], "`"), "`"));
    const JobField* field = FindJobField(path);
    ASSERT_NE(field, nullptr) << "docs/job-spec.md names " << path;
    const std::string cell = cells[2];
    std::smatch m;
    std::string word;
    if (std::regex_match(cell, m, number)) {
      word = m[1];
    } else if (std::regex_match(cell, m, single)) {
      word = DefaultWord(*field, cell);
    } else {
      continue;  // "the dataset's", "5% of R·L", ...
    }
    EXPECT_TRUE(SameValue(Printed(Defaults(), path), word))
        << "docs/job-spec.md: " << path << " defaults to " << cell
        << " but ApplyDefaults sets " << Printed(Defaults(), path);
    ++checked;
  }
  EXPECT_GT(checked, 25);
}

// One field of job.proto with its comment (the lines above it and the rest
// of its line).
struct ProtoField {
  std::string path;
  std::string comment;
  int line = 0;
};

std::vector<ProtoField> ProtoFields(const std::string& proto) {
  const std::map<std::string, std::string> prefixes = {
      {"JobSpec", ""},
      {"ModelSpec", "model."},
      {"DataSpec", "data."},
      {"OptimizerSpec", "optimizer."}};
  const std::regex message_re(R"(^message (\w+) \{)");
  const std::regex field_re(
      R"(^\s*(optional\s+)?([\w.]+)\s+(\w+)\s*=\s*\d+;\s*(//(.*))?$)");
  std::vector<ProtoField> out;
  std::string message, above;
  int number = 0;
  for (const std::string& line : Lines(proto)) {
    ++number;
    std::smatch m;
    const std::string trimmed(absl::StripLeadingAsciiWhitespace(line));
    if (std::regex_search(line, m, message_re)) {
      message = m[1];
      above.clear();
    } else if (line == "}") {
      message.clear();
    } else if (trimmed.rfind("//", 0) == 0) {
      above += " " + trimmed.substr(2);
    } else if (std::regex_match(line, m, field_re) &&
               prefixes.count(message)) {
      // The messages within (model, data, optimizer) have their own fields.
      if (!prefixes.count(m[2])) {
        out.push_back({prefixes.at(message) + std::string(m[3]),
                       above + " " + std::string(m[5]), number});
      }
      above.clear();
    } else {
      above.clear();
    }
  }
  return out;
}

TEST(JobFieldsDocsTest, TheProtoCommentsSayTheDefaultsApplyDefaultsSets) {
  const std::string proto = ReadSource("proto/twist/v1/job.proto");
  ASSERT_FALSE(proto.empty()) << "cannot read proto/twist/v1/job.proto";
  const std::regex default_re(R"(\bdefault:? +([^\s;,:)]+))");
  std::set<std::string> said;
  const std::vector<ProtoField> fields = ProtoFields(proto);
  EXPECT_GT(fields.size(), 40u);
  for (const ProtoField& f : fields) {
    const JobField* field = FindJobField(f.path);
    ASSERT_NE(field, nullptr) << "job.proto:" << f.line << ": " << f.path;
    for (std::sregex_iterator it(f.comment.begin(), f.comment.end(),
                                 default_re);
         it != std::sregex_iterator(); ++it) {
      std::string word((*it)[1]);
      if (word.size() > 1 && word.back() == '.') word.pop_back();
      said.insert(f.path);
      const bool computed = field->compute != nullptr;
      const std::string printed = Printed(Defaults(), f.path);
      const bool literal =
          SameValue(printed, DefaultWord(*field, word)) || word == printed;
      EXPECT_TRUE(literal || (computed && !std::isdigit(word.back())))
          << "job.proto:" << f.line << ": " << f.path << " says default "
          << word << " but ApplyDefaults sets " << printed;
    }
  }
  for (const JobField& field : JobFields()) {
    if (field.value.empty() && field.compute == nullptr) continue;
    EXPECT_EQ(said.count(std::string(field.path)), 1u)
        << "job.proto: the comment of " << field.path
        << " should say \"default " << ShownDefault(field) << "\"";
  }
}

TEST(JobFieldsTest, EveryFieldSetShowsUnsetOptionalsAsZero) {
  JobSpec spec;
  spec.set_rounds(3);
  const JobSpec shown = WithEveryFieldSet(spec);
  EXPECT_TRUE(shown.has_capacity_weighted());
  EXPECT_FALSE(shown.capacity_weighted());
  EXPECT_TRUE(shown.has_outer_momentum());
  EXPECT_TRUE(shown.optimizer().has_weight_decay());
  EXPECT_EQ(shown.optimizer().weight_decay(), 0);
  EXPECT_EQ(shown.rounds(), 3);
  spec.set_outer_momentum(0.9);
  EXPECT_EQ(WithEveryFieldSet(spec).outer_momentum(), 0.9);
}

TEST(RoundOptionsTest, WireDtypeAndOuterStepFollowTheSpec) {
  JobSpec spec;
  EXPECT_EQ(WireDtypeOf(spec), at::kFloat);
  spec.set_transport_dtype(twist::v1::TRANSPORT_DTYPE_BFLOAT16);
  EXPECT_EQ(WireDtypeOf(spec), at::kBFloat16);

  // The default in twist mode: Nesterov's step; in local_sgd: plain.
  const OuterStep twist_step = OuterStepOf(Defaults());
  EXPECT_FALSE(twist_step.plain());
  EXPECT_TRUE(twist_step.nesterov);
  EXPECT_EQ(twist_step.learning_rate, 1.0);
  EXPECT_EQ(twist_step.momentum, 0.7);
  JobSpec local_sgd;
  local_sgd.set_mode(twist::v1::MODE_LOCAL_SGD);
  ApplyDefaults(&local_sgd);
  EXPECT_TRUE(OuterStepOf(local_sgd).plain());
  spec.set_outer_learning_rate(0.7);
  spec.set_outer_momentum(0.9);
  spec.set_outer_heavy_ball(true);
  const OuterStep step = OuterStepOf(spec);
  EXPECT_EQ(step.learning_rate, 0.7);
  EXPECT_EQ(step.momentum, 0.9);
  EXPECT_FALSE(step.nesterov);
}

}  // namespace
}  // namespace twist::common
